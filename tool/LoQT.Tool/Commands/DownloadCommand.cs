using System.CommandLine;
using LoQT.Hub;
using Spectre.Console;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt download REPO_ID</c>: fetch a repository revision into the Hugging Face cache and print its local path.</summary>
internal static class DownloadCommand
{
    public static Command Create()
    {
        var repoId = new Argument<string>("repo-id") { Description = "Repository id on the Hub, e.g. meta-llama/Llama-3.2-1B." };
        var revision = new Option<string>("--revision")
        {
            Description = "Branch, tag or commit sha to download.",
            DefaultValueFactory = _ => "main",
        };
        var include = new Option<string[]>("--include")
        {
            Description = "Only download files matching this glob (fnmatch: '*' also crosses '/'; 'dir/' means the whole folder). Repeatable.",
        };
        var exclude = new Option<string[]>("--exclude") { Description = "Skip files matching this glob. Repeatable." };
        var localDir = new Option<string?>("--local-dir")
        {
            Description = "Also copy the files into this folder (regular files, not links) and print it instead of the snapshot path.",
        };
        var maxWorkers = new Option<int>("--max-workers")
        {
            Description = "Files downloaded at the same time.",
            DefaultValueFactory = _ => 8,
        };
        var repoType = HubCommandOptions.RepoType();
        var cacheDir = HubCommandOptions.CacheDir();
        var token = HubCommandOptions.Token();
        var endpoint = HubCommandOptions.Endpoint();
        var offline = HubCommandOptions.Offline();

        var command = new Command(
            "download",
            "Download a model (or dataset) from the Hugging Face Hub into the cache Python's huggingface_hub uses; resumes partial files. " +
            "Progress goes to stderr; stdout gets one line, the local path.")
        {
            repoId, revision, include, exclude, localDir, maxWorkers, repoType, cacheDir, token, endpoint, offline,
        };

        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var id = parse.GetValue(repoId)!;
            var type = HubCommandOptions.ParseRepoType(parse.GetValue(repoType)!);
            if (!HubRepoId.TryParse(id, out _, type))
            {
                await error.WriteLineAsync($"error: '{id}' is not a Hub repository id (expected namespace/name).");
                return 2;
            }

            if (parse.GetValue(maxWorkers) < 1)
            {
                await error.WriteLineAsync("error: --max-workers must be at least 1.");
                return 2;
            }

            var options = HubCommandOptions.Build(parse.GetValue(token), parse.GetValue(endpoint), parse.GetValue(cacheDir), parse.GetValue(offline), error)
                with { MaxParallelDownloads = parse.GetValue(maxWorkers) };
            var request = new SnapshotDownloadOptions
            {
                Revision = parse.GetValue(revision)!,
                RepoType = type,
                Include = parse.GetValue(include) ?? [],
                Exclude = parse.GetValue(exclude) ?? [],
                LocalDir = parse.GetValue(localDir),
            };

            try
            {
                using var client = new HubClient(options);
                // Progress goes to stderr, so that stdout holds only the path (path=$(loqt download …) works).
                var path = HubCommandOptions.IsInteractive(error)
                    ? await DownloadWithProgressBarsAsync(client, id, request, cancellationToken)
                    : await DownloadWithPlainOutputAsync(client, id, request, error, cancellationToken);
                await output.WriteLineAsync(path);
                return 0;
            }
            catch (Exception failure) when (failure is HubException or ArgumentException or IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync("error: " + failure.Message);
                return 1;
            }
        });
        return command;
    }

    private static async Task<string> DownloadWithPlainOutputAsync(
        HubClient client, string id, SnapshotDownloadOptions request, TextWriter log, CancellationToken cancellationToken)
    {
        var lines = TextWriter.Synchronized(log);
        var progress = new CallbackProgress(report =>
        {
            switch (report.Status)
            {
                case DownloadStatus.Started when report.BytesDownloaded > 0:
                    lines.WriteLine($"resuming {report.Path} at {HubCommandOptions.FormatBytes(report.BytesDownloaded)}");
                    break;
                case DownloadStatus.Completed:
                    lines.WriteLine($"downloaded {report.Path} ({HubCommandOptions.FormatBytes(report.BytesDownloaded)})");
                    break;
                case DownloadStatus.Cached:
                    lines.WriteLine($"cached {report.Path}");
                    break;
            }
        });
        return await client.DownloadSnapshotAsync(id, request, progress, cancellationToken);
    }

    private static async Task<string> DownloadWithProgressBarsAsync(
        HubClient client, string id, SnapshotDownloadOptions request, CancellationToken cancellationToken)
    {
        string path = string.Empty;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        await console.Progress()
            .AutoClear(false)
            .Columns(
                new TaskDescriptionColumn { Alignment = Justify.Left },
                new ProgressBarColumn(),
                new PercentageColumn(),
                new DownloadedColumn(),
                new TransferSpeedColumn(),
                new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var tasks = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
                var progress = new CallbackProgress(report =>
                {
                    if (!tasks.TryGetValue(report.Path, out var task))
                    {
                        task = context.AddTask(Markup.Escape(report.Path), maxValue: Math.Max(1, report.TotalBytes ?? 1));
                        tasks[report.Path] = task;
                    }

                    task.Value = report.BytesDownloaded;
                    if (report.Status is DownloadStatus.Completed or DownloadStatus.Cached)
                    {
                        task.Value = task.MaxValue;
                        task.StopTask();
                    }
                });
                path = await client.DownloadSnapshotAsync(id, request, progress, cancellationToken);
            });
        return path;
    }

    /// <summary>Runs the callback on the reporting thread, one report at a time (parallel downloads report concurrently).</summary>
    private sealed class CallbackProgress(Action<DownloadProgress> callback) : IProgress<DownloadProgress>
    {
        private readonly Lock gate = new();

        public void Report(DownloadProgress value)
        {
            lock (gate)
            {
                callback(value);
            }
        }
    }
}
