using System.CommandLine;
using LoQT.Tool.Commands;

namespace LoQT.Tool;

/// <summary>Builds the <c>loqt</c> command tree. One file per command under <c>Commands/</c>.</summary>
internal static class LoqtCli
{
    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand(
            "loqt: train and adapt 4-bit (NF4) Llama models with LoQT low-rank adapters, " +
            "and move them between safetensors files, the Hugging Face Hub and transformers.");
        // Each command adds itself here, one line each.
        root.Subcommands.Add(MemoryCommand.Create());
        return root;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var root = CreateRootCommand();
        return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
    }
}
