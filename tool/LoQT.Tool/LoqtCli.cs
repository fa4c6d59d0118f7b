using System.CommandLine;
using System.CommandLine.Help;
using LoQT.Tool.Commands;

namespace LoQT.Tool;

/// <summary>Builds the <c>loqt</c> command tree. One file per command under <c>Commands/</c>.</summary>
internal static class LoqtCli
{
    /// <summary>The command name users type; help and usage lines show it.</summary>
    public const string CommandName = "loqt";

    public static Command CreateRootCommand()
    {
        // Not RootCommand: its name is the entry assembly's file name ("LoQT.Tool" under the tool shim and
        // dotnet run), so help would print "Usage: LoQT.Tool …". A named command with the same options reads right.
        var root = new Command(
            CommandName,
            "loqt: train and adapt 4-bit (NF4) Llama models with LoQT low-rank adapters, " +
            "and move them between safetensors files, the Hugging Face Hub and transformers.")
        {
            new HelpOption(),
            new VersionOption(),
        };
        // Each command adds itself here, one line each.
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(DownloadCommand.Create());
        root.Subcommands.Add(PushCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(GenerateCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(QuantizeCommand.Create());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(MemoryCommand.Create());
        root.Subcommands.Add(AdaptCommand.Create());
        root.Subcommands.Add(PretrainCommand.Create());
        root.Subcommands.Add(ExportCommand.Create());
        root.Subcommands.Add(DemoCommand.Create());
        return root;
    }

    /// <summary>Exit code for a command line that does not parse, as most Unix tools use.</summary>
    public const int UsageError = 2;

    public static async Task<int> RunAsync(string[] args)
    {
        var parse = CreateRootCommand().Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await Console.Error.WriteLineAsync("error: " + error.Message).ConfigureAwait(false);
            }

            var command = string.Join(' ', parse.CommandResult.Command.Name == parse.RootCommandResult.Command.Name
                ? [] : new[] { parse.CommandResult.Command.Name });
            await Console.Error.WriteLineAsync($"Run '{CommandName} {command}{(command.Length > 0 ? " " : "")}--help' for usage.").ConfigureAwait(false);
            return UsageError;
        }

        return await parse.InvokeAsync().ConfigureAwait(false);
    }
}
