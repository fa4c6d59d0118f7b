using System.Globalization;
using System.Net.Http;
using System.Net.Sockets;
using Polly;
using Polly.Retry;

namespace LoQT.Hub;

/// <summary>
/// The Polly pipeline every retryable Hub call runs in: jittered exponential backoff on 5xx / 429 / 408 (honouring
/// <c>Retry-After</c>), timeouts and dropped connections. Client errors (401/403/404) are <see cref="HubException"/>s
/// and are never retried.
/// </summary>
internal static class HubRetryPipeline
{
    public static ResiliencePipeline Create(HubOptions options)
    {
        if (options.MaxRetries <= 0)
        {
            return ResiliencePipeline.Empty;
        }

        return new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = options.RetryMaxDelay,
                ShouldHandle = static args => ValueTask.FromResult(
                    args.Outcome.Exception is { } error && IsTransient(error) && !args.Context.CancellationToken.IsCancellationRequested),
                DelayGenerator = args => ValueTask.FromResult(
                    args.Outcome.Exception is TransientHubStatusException { RetryAfter: { } retryAfter }
                        ? (TimeSpan?)(retryAfter < options.MaxRetryAfter ? retryAfter : options.MaxRetryAfter)
                        : null),
                OnRetry = args =>
                {
                    options.Log?.Invoke(string.Create(
                        CultureInfo.InvariantCulture,
                        $"{Reason(args.Outcome.Exception)}; retry {args.AttemptNumber + 1}/{options.MaxRetries} in {args.RetryDelay.TotalSeconds:0.###} s"));
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>Failures that another attempt may fix: server trouble, throttling, timeouts, broken connections.</summary>
    public static bool IsTransient(Exception error) => error switch
    {
        TransientHubStatusException => true,
        TimeoutException => true,
        HttpRequestException => true,
        HttpIOException => true,
        IOException { InnerException: SocketException or HttpIOException } => true,
        _ => false,
    };

    private static string Reason(Exception? error) => error switch
    {
        null => "failed",
        TransientHubStatusException status => status.Message,
        _ => error.GetType().Name + ": " + error.Message,
    };
}
