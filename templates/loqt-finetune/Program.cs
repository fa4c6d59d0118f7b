// Fine-tunes a Llama model with LoQT on prompt/completion data, then evaluates it and lets it answer a prompt:
// the LoQT library end to end. Usage: dotnet run [-- MODEL [STEPS]]
//   MODEL: a Hugging Face repo id (downloaded through the huggingface_hub cache; HF_TOKEN for gated repos) or a folder.
// The same training runs from MSBuild, without this code: dotnet build -t:LoqtAdapt (see the .csproj and README.md).
using System.Globalization;
using LoQT.Data;
using LoQT.Hub;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Training;
using TorchSharp;

const string DefaultModel = @"LOQT_MODEL_ID";
const string TrainData = @"LOQT_DATASET_PATH";
const string ValidData = @"LOQT_EVAL_DATASET_PATH";
const string Method = "LOQT_METHOD";
const int Rank = LOQT_RANK;
const string Backend = "LOQT_BACKEND";
const string OutputDirectory = "runs/program";
const int SequenceLength = 128;

var model = args.Length > 0 ? args[0] : DefaultModel;
var steps = args.Length > 1 ? long.Parse(args[1], CultureInfo.InvariantCulture) : 200;

// Ctrl-C stops after the current step; the trainer saves a checkpoint first.
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

// 1. The model: a folder is used as it is; a repo id is downloaded (only config, tokenizer and safetensors files).
using var hub = new HubClient(HubOptions.FromEnvironment());
var modelDirectory = await hub.ResolveModelAsync(model, cancellationToken: cancel.Token);

// 2. Train. Every linear layer of the decoder becomes a LoQT layer: its weight W in NF4, a projection P from the SVD
//    of W's gradient (NF4 too), and a small trainable factor B, merged into W at steps 0, T, T + T + 1.2, …
var options = new TrainingOptions
{
    Method = LoqtMethodNames.Parse(Method),
    Layers = new LoqtOptions { Rank = Rank },
    Schedule = MergeSchedule.Exponential(interval: 50, growth: 1.2),
    Task = TrainingTask.Completion, // loss on the completions only
    NoPacking = true,               // one record per sequence
    Steps = steps,
    LearningRate = 1e-4,
    WarmupSteps = Math.Min(10, steps - 1),
    BatchSize = 4,
    SequenceLength = SequenceLength,
    EvalEvery = 50,
};
var run = new TrainingRun
{
    ModelDirectory = modelDirectory,
    Dataset = TrainData,
    EvalDataset = File.Exists(ValidData) ? ValidData : null,
    OutputDirectory = OutputDirectory,
    Options = options,
    Device = Backend == "cuda" ? torch.CUDA : null,
};
var result = await Trainer.RunAsync(run, new StepPrinter(), Console.Error, cancel.Token);
Console.WriteLine($"checkpoint: {result.Checkpoint}");
if (result.Interrupted)
{
    return 130;
}

// 3. Evaluate the trained checkpoint: W, P and B as saved, rebuilt into LoQT layers.
var tokenizer = TokenizerLoader.FromDirectory(result.Checkpoint);
var (trained, _, _) = LoqtCheckpoint.Load(result.Checkpoint, run.Device, trainable: false);
using (trained)
{
    if (run.EvalDataset is { } validPath)
    {
        var valid = await TokenDataset.LoadAsync(validPath, tokenizer, new TokenDatasetOptions { SequenceLength = SequenceLength, Pack = false });
        var evaluation = LlamaEvaluator.Evaluate(trained, valid, batchSize: 4);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"validation: loss {evaluation.Loss:0.0000}, perplexity {evaluation.Perplexity:0.00} over {evaluation.Tokens} tokens"));
    }

    // 4. Generate: greedy decoding of a prompt in the training format, stopping at end of sequence.
    var prompt = FirstPrompt(run.EvalDataset ?? TrainData);
    var promptIds = tokenizer.Encode(prompt, addSpecialTokens: true);
    var stops = trained.Config.EosTokenIds.Concat(tokenizer.EosTokenId is { } eos ? [eos] : []).ToArray();
    var generated = new LlamaGenerator(trained)
        .Generate(promptIds, new GenerationOptions { MaxNewTokens = 32, StopTokenIds = stops }, cancel.Token)
        .ToList();
    Console.WriteLine($"prompt: {prompt}");
    Console.WriteLine($"answer: {tokenizer.Decode(generated).Trim()}");
}

return 0;

// The prompt of the first record of a prompt/completion .jsonl file (or of the first such file in a folder).
static string FirstPrompt(string path)
{
    var file = Directory.Exists(path) ? Directory.EnumerateFiles(path, "*.jsonl", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First() : path;
    var line = File.ReadLines(file).First(l => !string.IsNullOrWhiteSpace(l));
    using var record = System.Text.Json.JsonDocument.Parse(line);
    return record.RootElement.GetProperty("prompt").GetString() ?? "";
}

// One line per training step on stderr (reported on the training thread, so the lines stay in order).
internal sealed class StepPrinter : IProgress<TrainingStepReport>
{
    public void Report(TrainingStepReport value) =>
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"step {value.Step}/{value.TotalSteps}  loss {value.Loss:0.0000}{(value.EvalLoss is { } e ? $"  eval loss {e:0.0000}" : "")}{(value.Reinitialized ? "  [merged, new projections]" : "")}"));
}
