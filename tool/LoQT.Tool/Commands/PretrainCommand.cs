using System.CommandLine;
using LoQT.Models.Llama;
using LoQT.Training;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt pretrain</c>: train a Llama from random initialization (presets of the LoQT paper's shapes) with LoQT.</summary>
internal static class PretrainCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config")
        {
            Description = $"Model shape: a preset ({string.Join(", ", LlamaPresets.Names)}) or a config.json file.",
        };
        var tokenizer = new Option<string>("--tokenizer")
        {
            Description = "Directory with the tokenizer (tokenizer.json or tokenizer.model, tokenizer_config.json).",
        };
        var training = new TrainingCommandOptions();
        var command = new Command("pretrain", "Pretrain a Llama from random initialization, built layer by layer straight into NF4 LoQT layers (never a full-precision model).")
        {
            config, tokenizer,
        };
        training.AddTo(command);
        command.SetAction(async (parse, cancellationToken) => await training.RunAsync(parse, _ =>
        {
            if (parse.GetValue(training.Resume) is not null)
            {
                return Task.FromResult(new TrainingRun { Dataset = "", OutputDirectory = "" });
            }

            var name = parse.GetValue(config) ?? throw new ArgumentException("--config is required (unless --resume is given).");
            var tokenizerDirectory = parse.GetValue(tokenizer) ?? throw new ArgumentException("--tokenizer is required (unless --resume is given).");
            var shape = LlamaConfig.Parse(LlamaPresets.ResolveConfigJson(name), name);
            return Task.FromResult(new TrainingRun { Config = shape, TokenizerDirectory = tokenizerDirectory, Dataset = "", OutputDirectory = "" });
        }, cancellationToken).ConfigureAwait(false));
        return command;
    }
}
