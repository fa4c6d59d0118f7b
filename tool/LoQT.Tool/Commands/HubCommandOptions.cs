using System.CommandLine;
using System.Globalization;
using LoQT.Hub;

namespace LoQT.Tool.Commands;

/// <summary>
/// Options shared by the commands that talk to the Hub (download, push, and every <c>--model</c> that accepts a repo id),
/// and how they combine with the huggingface_hub environment variables.
/// </summary>
internal static class HubCommandOptions
{
    public static Option<string?> Token() => new("--token")
    {
        Description = "Hugging Face access token (default: HF_TOKEN, else the token file `huggingface-cli login` wrote). Never printed.",
    };

    public static Option<string?> Endpoint() => new("--endpoint")
    {
        Description = "Hub URL (default: HF_ENDPOINT, else https://huggingface.co).",
    };

    public static Option<string?> CacheDir() => new("--cache-dir")
    {
        Description = "Cache folder shared with Python's huggingface_hub (default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).",
    };

    public static Option<bool> Offline() => new("--offline")
    {
        Description = "Use only the cache, never the network (same as HF_HUB_OFFLINE=1).",
    };

    public static Option<string> RepoType()
    {
        var option = new Option<string>("--repo-type")
        {
            Description = "Kind of repository: model, dataset or space.",
            DefaultValueFactory = _ => "model",
        };
        option.AcceptOnlyFromAmong("model", "dataset", "space");
        return option;
    }

    /// <summary>Environment settings overridden by whichever options were given; diagnostics go to <paramref name="log"/>.</summary>
    public static HubOptions Build(string? token, string? endpoint, string? cacheDir, bool offline, TextWriter log)
    {
        var options = HubOptions.FromEnvironment();
        var synchronizedLog = TextWriter.Synchronized(log);
        return options with
        {
            Token = string.IsNullOrWhiteSpace(token) ? options.Token : token.Trim(),
            Endpoint = string.IsNullOrWhiteSpace(endpoint) ? options.Endpoint : endpoint.TrimEnd('/'),
            CacheDir = string.IsNullOrWhiteSpace(cacheDir) ? options.CacheDir : Path.GetFullPath(cacheDir),
            Offline = offline || options.Offline,
            Log = line => synchronizedLog.WriteLine("note: " + line),
        };
    }

    /// <summary>
    /// For commands with a <c>--model</c> option: an existing directory as it is, otherwise a Hub repo id downloaded
    /// (only what a model needs) through the cache. Progress lines go to <paramref name="log"/> (stderr), so stdout stays
    /// the command's own. The Hub settings come from the environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE, HF_HUB_OFFLINE).
    /// </summary>
    public static Task<string> ResolveModelAsync(
        string model,
        TextWriter log,
        CancellationToken cancellationToken,
        string? token = null,
        string? endpoint = null,
        string? cacheDir = null,
        string revision = "main",
        bool offline = false) =>
        ResolveAsync(model, log, (client, progress) => client.ResolveModelAsync(model, revision, progress, cancellationToken), token, endpoint, cacheDir, offline);

    /// <summary>Like <see cref="ResolveModelAsync"/>, for commands that need only a tokenizer: a repo id downloads only its tokenizer files.</summary>
    public static Task<string> ResolveTokenizerAsync(string model, TextWriter log, CancellationToken cancellationToken) =>
        ResolveAsync(model, log, (client, progress) => client.ResolveTokenizerAsync(model, "main", progress, cancellationToken), null, null, null, false);

    public static HubRepoType ParseRepoType(string value) => value switch
    {
        "dataset" => HubRepoType.Dataset,
        "space" => HubRepoType.Space,
        _ => HubRepoType.Model,
    };

    public static string FormatBytes(long bytes)
    {
        string[] units = ["B", "KB", "MB", "GB", "TB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }

    /// <summary>Whether to draw live progress bars on <paramref name="error"/>: only when it is the process's stderr and a real terminal.</summary>
    public static bool IsInteractive(TextWriter error) =>
        ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected;

    private static async Task<string> ResolveAsync(
        string model,
        TextWriter log,
        Func<HubClient, IProgress<DownloadProgress>, Task<string>> resolve,
        string? token,
        string? endpoint,
        string? cacheDir,
        bool offline)
    {
        if (Directory.Exists(model))
        {
            return Path.GetFullPath(model);
        }

        using var client = new HubClient(Build(token, endpoint, cacheDir, offline, log));
        var lines = TextWriter.Synchronized(log);
        var progress = new LineProgress(report =>
        {
            if (report.Status == DownloadStatus.Completed)
            {
                lines.WriteLine($"downloaded {model}/{report.Path} ({FormatBytes(report.BytesDownloaded)})");
            }
        });
        return await resolve(client, progress).ConfigureAwait(false);
    }

    private sealed class LineProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }
}
