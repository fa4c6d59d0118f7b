using System.CommandLine;
using LoQT.Hub;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt push --folder DIR --repo REPO_ID</c>: publish a folder (e.g. an exported model) as one commit and print its URL.</summary>
internal static class PushCommand
{
    public static Command Create()
    {
        var folder = new Option<string>("--folder")
        {
            Description = "Folder to publish (every file in it, recursively; .git/ is skipped).",
            Required = true,
        };
        var repo = new Option<string>("--repo")
        {
            Description = "Target repository id, e.g. your-name/Llama-3.2-1B-loqt-nf4. Created if missing.",
            Required = true,
        };
        var isPrivate = new Option<bool>("--private") { Description = "Create the repository as private (an existing repository keeps its visibility)." };
        var message = new Option<string>("--message")
        {
            Description = "Commit message.",
            DefaultValueFactory = _ => "Upload folder with loqt",
        };
        var description = new Option<string?>("--description") { Description = "Commit description." };
        var revision = new Option<string>("--revision")
        {
            Description = "Branch to commit to.",
            DefaultValueFactory = _ => "main",
        };
        var repoType = HubCommandOptions.RepoType();
        var token = HubCommandOptions.Token();
        var endpoint = HubCommandOptions.Endpoint();

        var command = new Command(
            "push",
            "Publish a folder to the Hugging Face Hub as one commit: large and binary files through LFS (skipping objects the Hub already has), " +
            "the rest inline. Progress goes to stderr; stdout gets one line, the commit URL.")
        {
            folder, repo, isPrivate, message, description, revision, repoType, token, endpoint,
        };

        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var dir = parse.GetValue(folder)!;
            var id = parse.GetValue(repo)!;
            var type = HubCommandOptions.ParseRepoType(parse.GetValue(repoType)!);
            if (!Directory.Exists(dir))
            {
                await error.WriteLineAsync($"error: --folder '{dir}' is not a directory.");
                return 2;
            }

            if (!HubRepoId.TryParse(id, out _, type))
            {
                await error.WriteLineAsync($"error: --repo '{id}' is not a Hub repository id (expected namespace/name).");
                return 2;
            }

            var options = HubCommandOptions.Build(parse.GetValue(token), parse.GetValue(endpoint), cacheDir: null, offline: false, error);
            // Per-file lines go to stderr; stdout gets the commit URL only.
            var lines = TextWriter.Synchronized(error);
            var progress = new CallbackProgress(report =>
            {
                var line = report.Status switch
                {
                    UploadStatus.Uploaded => $"lfs     {report.Path} uploaded ({HubCommandOptions.FormatBytes(report.TotalBytes)})",
                    UploadStatus.AlreadyPresent => $"lfs     {report.Path} already on the Hub, skipped",
                    UploadStatus.Inline => $"inline  {report.Path} ({HubCommandOptions.FormatBytes(report.TotalBytes)})",
                    UploadStatus.Ignored => $"ignored {report.Path} (the repository's ignore rules)",
                    _ => null,
                };
                if (line is not null)
                {
                    lines.WriteLine(line);
                }
            });

            try
            {
                using var client = new HubClient(options);
                var commit = await client.UploadFolderAsync(
                    dir,
                    id,
                    new UploadFolderOptions
                    {
                        Revision = parse.GetValue(revision)!,
                        RepoType = type,
                        CommitMessage = parse.GetValue(message)!,
                        CommitDescription = parse.GetValue(description) ?? string.Empty,
                        Private = parse.GetValue(isPrivate),
                    },
                    progress,
                    cancellationToken);
                await output.WriteLineAsync(commit.CommitUrl);
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

    private sealed class CallbackProgress(Action<UploadProgress> callback) : IProgress<UploadProgress>
    {
        public void Report(UploadProgress value) => callback(value);
    }
}
