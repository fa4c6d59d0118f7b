using System.Net;

namespace LoQT.Hub;

/// <summary>A response worth retrying (5xx, 429, 408); carries the server's <c>Retry-After</c> for the backoff.</summary>
internal sealed class TransientHubStatusException(string message, HttpStatusCode statusCode, TimeSpan? retryAfter)
    : Exception(message)
{
    public HttpStatusCode StatusCode { get; } = statusCode;

    public TimeSpan? RetryAfter { get; } = retryAfter;
}
