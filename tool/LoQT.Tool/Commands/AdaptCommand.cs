using System.CommandLine;
using LoQT.Training;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt adapt</c>: continued pretraining or fine-tuning of a Hugging Face Llama checkpoint with LoQT.</summary>
internal static class AdaptCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "Model to adapt: a local directory (Hugging Face layout, dense or bitsandbytes NF4, or a LoQT output) or a Hub repo id (downloaded through the cache).",
        };
        var training = new TrainingCommandOptions();
        var command = new Command("adapt", "Train a Llama checkpoint with LoQT (NF4 weights + gradient-initialized low-rank adapters, merged on a schedule), or with a baseline to compare.")
        {
            model,
        };
        training.AddTo(command);
        command.SetAction(async (parse, cancellationToken) => await training.RunAsync(parse, async _ =>
        {
            var resume = parse.GetValue(training.Resume);
            var given = parse.GetValue(model);
            if (given is null && resume is null)
            {
                throw new ArgumentException("--model is required (unless --resume is given).");
            }

            var directory = given is null ? null
                : ModelCommandOptions.ResolveCheckpoint(await HubCommandOptions.ResolveModelAsync(given, parse.InvocationConfiguration.Error, cancellationToken).ConfigureAwait(false));
            return new TrainingRun { ModelDirectory = directory, Dataset = "", OutputDirectory = "" };
        }, cancellationToken).ConfigureAwait(false));
        return command;
    }
}
