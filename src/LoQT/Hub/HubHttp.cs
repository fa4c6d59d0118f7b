using System.Net;
using System.Net.Http.Headers;
using Polly;

namespace LoQT.Hub;

/// <summary>
/// HTTP plumbing shared by downloads and uploads: one <see cref="HttpClient"/> that never follows redirects by itself
/// (so the token is only ever sent to the Hub's own host), per-attempt timeouts, error classification and the retry
/// pipeline.
/// </summary>
internal sealed class HubHttp : IDisposable
{
    private const int MaxRedirects = 10;

    private readonly HttpClient client;
    private readonly HubOptions options;
    private readonly ResiliencePipeline retryPipeline;

    public HubHttp(HubOptions options)
    {
        this.options = options;
        Endpoint = options.Endpoint.TrimEnd('/');
        EndpointUri = new Uri(Endpoint + "/", UriKind.Absolute);
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.RequestTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        };
        client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("loqt", typeof(HubHttp).Assembly.GetName().Version?.ToString(3) ?? "0"));
        retryPipeline = HubRetryPipeline.Create(options);
    }

    /// <summary>The endpoint without trailing slash, e.g. <c>https://huggingface.co</c>.</summary>
    public string Endpoint { get; }

    public Uri EndpointUri { get; }

    public bool HasToken => !string.IsNullOrEmpty(options.Token);

    public HubOptions Options => options;

    /// <summary>An absolute URL on the Hub from a path relative to the endpoint (already escaped).</summary>
    public Uri Url(string relative) => new(Endpoint + "/" + relative.TrimStart('/'), UriKind.Absolute);

    /// <summary>A URL for logs and messages: scheme, host and path, without query (signed storage URLs carry secrets there).</summary>
    public static string Describe(Uri? uri) => uri is null ? "(no url)" : uri.IsAbsoluteUri ? uri.GetLeftPart(UriPartial.Path) : uri.ToString();

    /// <summary>Runs <paramref name="attempt"/> in the retry pipeline; exhausted retries become <see cref="HubRequestFailedException"/>.</summary>
    public async Task<T> ExecuteAsync<T>(HubRequestContext context, Func<CancellationToken, Task<T>> attempt, CancellationToken cancellationToken)
    {
        try
        {
            return await retryPipeline.ExecuteAsync(async token => await attempt(token).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception error) when (HubRetryPipeline.IsTransient(error) && !cancellationToken.IsCancellationRequested)
        {
            throw Exhausted(context, error);
        }
    }

    /// <summary>Runs <paramref name="attempt"/> once (for requests that must not be repeated, such as a commit).</summary>
    public async Task<T> ExecuteOnceAsync<T>(HubRequestContext context, Func<CancellationToken, Task<T>> attempt, CancellationToken cancellationToken)
    {
        try
        {
            return await attempt(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception error) when (HubRetryPipeline.IsTransient(error) && !cancellationToken.IsCancellationRequested)
        {
            throw Exhausted(context, error, attempts: 1);
        }
    }

    /// <summary>
    /// Sends one request, following redirects per <paramref name="redirects"/>. A new request is built per hop;
    /// the token goes only to the endpoint's host and only when <paramref name="authenticate"/>.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(
        HttpMethod method,
        Uri url,
        bool authenticate,
        RedirectPolicy redirects,
        CancellationToken cancellationToken,
        Action<HttpRequestMessage>? configure = null,
        Func<HttpContent>? content = null)
    {
        var target = url;
        for (var hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, target);
            configure?.Invoke(request);
            if (content is not null)
            {
                request.Content = content();
            }

            if (authenticate && HasToken && SameAuthority(target, EndpointUri))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.Token);
            }

            var response = await SendWithTimeoutAsync(request, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is < 300 or >= 400 || response.Headers.Location is not { } location || redirects == RedirectPolicy.None ||
                (redirects == RedirectPolicy.RelativeOnly && location.IsAbsoluteUri) || hop >= MaxRedirects)
            {
                return response;
            }

            response.Dispose();
            target = location.IsAbsoluteUri ? location : new Uri(target, location);
        }
    }

    /// <summary>Throws the classified exception when <paramref name="response"/> is not a success (2xx).</summary>
    public async Task EnsureSuccessAsync(HttpResponseMessage response, HubRequestContext context, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var tokenSent = response.RequestMessage?.Headers.Authorization is not null;
        string? body = null;
        if (response.RequestMessage?.Method != HttpMethod.Head)
        {
            try
            {
                body = await ReadLimitedAsync(response, 4096, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception error) when (HubRetryPipeline.IsTransient(error))
            {
                // The status code alone decides; an unreadable body only loses detail.
            }
        }

        throw Redacted(HubFailureClassifier.Classify(response, context, Endpoint, tokenSent, body));
    }

    /// <summary>Copies a response body into <paramref name="destination"/>, failing with <see cref="TimeoutException"/> when no byte arrives for <see cref="HubOptions.ReadTimeout"/>.</summary>
    public async Task CopyBodyAsync(HttpResponseMessage response, Stream destination, Action<int>? onChunk, CancellationToken cancellationToken)
    {
        await using var source = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[81920];
        while (true)
        {
            int read;
            using (var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                idle.CancelAfter(options.ReadTimeout);
                try
                {
                    read = await source.ReadAsync(buffer, idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"No data from {Describe(response.RequestMessage?.RequestUri)} for {options.ReadTimeout.TotalSeconds} s.");
                }
            }

            if (read == 0)
            {
                return;
            }

            await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            onChunk?.Invoke(read);
        }
    }

    /// <summary>Reads a (small) response body as text with the read timeout applied.</summary>
    public async Task<string> ReadTextAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await CopyBodyAsync(response, buffer, null, cancellationToken).ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Removes the token from a message, defensively: the client never puts it there, but a server might echo it.</summary>
    public string Redact(string text) =>
        HasToken ? text.Replace(options.Token!, "***", StringComparison.Ordinal) : text;

    public void Dispose() => client.Dispose();

    private static bool SameAuthority(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase) &&
        string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private static async Task<string> ReadLimitedAsync(HttpResponseMessage response, int maxBytes, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new byte[maxBytes];
        var total = 0;
        int read;
        while (total < maxBytes && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
        {
            total += read;
        }

        return System.Text.Encoding.UTF8.GetString(buffer, 0, total);
    }

    private async Task<HttpResponseMessage> SendWithTimeoutAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.RequestTimeout);
        try
        {
            return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"No response from {request.Method} {Describe(request.RequestUri)} within {options.RequestTimeout.TotalSeconds} s.");
        }
    }

    private HubRequestFailedException Exhausted(HubRequestContext context, Exception error, int? attempts = null)
    {
        var made = attempts ?? Math.Max(1, options.MaxRetries + 1);
        var what = error is TransientHubStatusException status
            ? status.Message
            : $"{context.Operation}: could not reach {EndpointUri.Authority} ({error.GetType().Name}: {error.Message})";
        var failure = new HubRequestFailedException(
            Redact($"{what}; gave up after {made} attempt{(made == 1 ? string.Empty : "s")}. The Hub may be down or throttling: try again later."),
            error is TransientHubStatusException ? null : error)
        {
            Attempts = made,
        };
        if (error is TransientHubStatusException transient)
        {
            failure.StatusCode = transient.StatusCode;
        }

        return failure;
    }

    private Exception Redacted(Exception error) =>
        HasToken && error.Message.Contains(options.Token!, StringComparison.Ordinal)
            ? new HubException(Redact(error.Message)) { StatusCode = (error as HubException)?.StatusCode }
            : error;
}

/// <summary>Which redirects <see cref="HubHttp.SendAsync"/> follows.</summary>
internal enum RedirectPolicy
{
    /// <summary>Return the 3xx response itself.</summary>
    None,

    /// <summary>Follow redirects within the same host (relative <c>Location</c>), stop at absolute ones (storage), as huggingface_hub's HEAD does.</summary>
    RelativeOnly,

    /// <summary>Follow every redirect (downloads from storage).</summary>
    All,
}
