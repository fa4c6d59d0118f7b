using System.Globalization;
using System.Text;

namespace LoQT.Hub;

/// <summary>
/// How <see cref="HubClient"/> reaches the Hub and where it caches files. <see cref="FromEnvironment"/> reads the same
/// environment variables as Python's huggingface_hub, so both tools share one cache and one login.
/// </summary>
public sealed record HubOptions
{
    /// <summary>The public Hub.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Base URL of the Hub (no trailing slash). Environment: <c>HF_ENDPOINT</c>.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>
    /// Access token sent as <c>Authorization: Bearer</c> to the Hub's own host only; never printed, logged or put in
    /// exception messages. Environment: <c>HF_TOKEN</c>, else the file <c>$HF_HOME/token</c>.
    /// </summary>
    public string? Token { get; init; }

    /// <summary>The cache root (holds <c>models--org--name</c> folders). Environment: <c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>.</summary>
    public string CacheDir { get; init; } = Path.Combine(DefaultHfHome(static name => Environment.GetEnvironmentVariable(name)), "hub");

    /// <summary>Serve from the cache only and fail clearly on a miss. Environment: <c>HF_HUB_OFFLINE=1</c>.</summary>
    public bool Offline { get; init; }

    /// <summary>Retries after the first attempt for 5xx, 429, 408, timeouts and dropped connections (0 disables retrying).</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>First backoff delay; later ones grow exponentially with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Cap on one computed backoff delay.</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Cap on a server's <c>Retry-After</c>, so a misbehaving server cannot stall a download for hours.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long to wait for response headers before the attempt counts as timed out (and is retried).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a download may receive no bytes before the attempt counts as timed out (and resumes).</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Files of one snapshot downloaded at the same time.</summary>
    public int MaxParallelDownloads { get; init; } = 8;

    /// <summary>Diagnostics sink (retries, waiting for a lock, cache fallbacks); messages never contain the token.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// Options from the environment: <c>HF_ENDPOINT</c>, <c>HF_TOKEN</c> (else <c>HF_TOKEN_PATH</c> or <c>$HF_HOME/token</c>),
    /// <c>HF_HUB_CACHE</c> (else <c>$HF_HOME/hub</c>; <c>HF_HOME</c> defaults to <c>$XDG_CACHE_HOME/huggingface</c> or
    /// <c>~/.cache/huggingface</c>), <c>HF_HUB_OFFLINE</c> (or <c>TRANSFORMERS_OFFLINE</c>).
    /// </summary>
    /// <param name="environment">Reads one variable; defaults to the process environment (tests pass their own).</param>
    public static HubOptions FromEnvironment(Func<string, string?>? environment = null)
    {
        environment ??= static name => Environment.GetEnvironmentVariable(name);
        string? Get(string name) => environment(name) is { Length: > 0 } value ? value : null;

        var hfHome = DefaultHfHome(environment);
        var tokenPath = Get("HF_TOKEN_PATH") ?? Path.Combine(hfHome, "token");
        var token = Get("HF_TOKEN")?.Trim() ?? ReadTokenFile(tokenPath);

        return new HubOptions
        {
            Endpoint = (Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/'),
            Token = string.IsNullOrEmpty(token) ? null : token,
            CacheDir = Get("HF_HUB_CACHE") ?? Path.Combine(hfHome, "hub"),
            Offline = IsTrue(Get("HF_HUB_OFFLINE")) || IsTrue(Get("TRANSFORMERS_OFFLINE")),
        };
    }

    /// <summary>All settings except the token, which shows only as set or not set.</summary>
    public override string ToString()
    {
        var text = new StringBuilder("HubOptions { ");
        text.Append("Endpoint = ").Append(Endpoint);
        text.Append(", Token = ").Append(Token is null ? "(none)" : "(set)");
        text.Append(", CacheDir = ").Append(CacheDir);
        text.Append(", Offline = ").Append(Offline);
        text.Append(CultureInfo.InvariantCulture, $", MaxRetries = {MaxRetries}, RetryBaseDelay = {RetryBaseDelay}, RetryMaxDelay = {RetryMaxDelay}");
        text.Append(CultureInfo.InvariantCulture, $", RequestTimeout = {RequestTimeout}, ReadTimeout = {ReadTimeout}, MaxParallelDownloads = {MaxParallelDownloads} }}");
        return text.ToString();
    }

    private static string DefaultHfHome(Func<string, string?> environment)
    {
        if (environment("HF_HOME") is { Length: > 0 } hfHome)
        {
            return hfHome;
        }

        var xdgCache = environment("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(xdgCache, "huggingface");
    }

    private static string? ReadTokenFile(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    // Same truthy spellings as huggingface_hub's constants._is_true.
    private static bool IsTrue(string? value) =>
        value is not null && (value.Equals("1", StringComparison.Ordinal) ||
                              value.Equals("true", StringComparison.OrdinalIgnoreCase) ||
                              value.Equals("yes", StringComparison.OrdinalIgnoreCase) ||
                              value.Equals("on", StringComparison.OrdinalIgnoreCase));
}
