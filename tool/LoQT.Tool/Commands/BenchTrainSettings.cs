using System.Globalization;
using System.Text.Json.Nodes;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Training;

namespace LoQT.Tool.Commands;

/// <summary>The settings of one <c>loqt bench train</c> run, and the <c>loqt pretrain</c> command line of each method.</summary>
internal sealed record BenchTrainSettings
{
    public required string Config { get; init; }

    public required string DataDirectory { get; init; }

    public required string TokenizerDirectory { get; init; }

    public required IReadOnlyList<string> Methods { get; init; }

    public int Steps { get; init; }

    public int BatchSize { get; init; }

    public int GradientAccumulation { get; init; }

    public int SequenceLength { get; init; }

    /// <summary>Null until <see cref="Resolve"/>: hidden size / 4.</summary>
    public int? Rank { get; init; }

    public double Alpha { get; init; }

    /// <summary>Null until <see cref="Resolve"/>: steps / 10, at least 5.</summary>
    public int? UpdateInterval { get; init; }

    public double IntervalGrowth { get; init; }

    public int ErrorCompensationIterations { get; init; }

    public double LearningRate { get; init; }

    public double FullLearningRate { get; init; }

    /// <summary>Null until <see cref="Resolve"/>: 10% of the steps.</summary>
    public int? WarmupSteps { get; init; }

    public double MaxGradNorm { get; init; }

    public required string DType { get; init; }

    public int EvalLines { get; init; }

    public long Seed { get; init; }

    public required string OutputDirectory { get; init; }

    /// <summary>The model's shape (set by <see cref="Resolve"/>).</summary>
    public LlamaConfig Model { get; private init; } = null!;

    public long TokensPerStep => (long)BatchSize * GradientAccumulation * SequenceLength;

    /// <summary>Fills in the defaults that depend on the model and the run length, and checks everything before any work.</summary>
    /// <exception cref="ArgumentException">A value is out of range, or a file or directory is missing (named).</exception>
    public BenchTrainSettings Resolve()
    {
        var model = LlamaConfig.Parse(LlamaPresets.ResolveConfigJson(Config), Config);
        var resolved = this with
        {
            Model = model,
            Rank = Rank ?? Math.Max(1, model.HiddenSize / 4),
            UpdateInterval = UpdateInterval ?? Math.Max(5, Steps / 10),
            WarmupSteps = WarmupSteps ?? Steps / 10,
        };

        foreach (var file in new[] { "train.jsonl", "valid.jsonl" })
        {
            if (!File.Exists(Path.Combine(DataDirectory, file)))
            {
                throw new ArgumentException($"--data {DataDirectory}: there is no {file}.", "data");
            }
        }

        if (!Directory.Exists(TokenizerDirectory))
        {
            throw new ArgumentException($"--tokenizer {TokenizerDirectory}: no such directory.", "tokenizer");
        }

        if (EvalLines < 0)
        {
            throw new ArgumentOutOfRangeException("eval-lines", EvalLines, $"--eval-lines {EvalLines} must not be negative.");
        }

        if (FullLearningRate <= 0 || !double.IsFinite(FullLearningRate))
        {
            throw new ArgumentOutOfRangeException("lr-full", FullLearningRate, $"--lr-full {FullLearningRate} must be a positive number.");
        }

        // The same checks pretrain makes, here before the first child starts.
        _ = MergeSchedule.Exponential(resolved.UpdateInterval!.Value, IntervalGrowth);
        foreach (var method in Methods)
        {
            var options = resolved.TrainingOptions(method);
            options.Validate();
            options.ValidateFor(model);
        }

        return resolved;
    }

    /// <summary>What <c>loqt pretrain</c> runs for <paramref name="method"/> (for validation).</summary>
    public TrainingOptions TrainingOptions(string method) => new()
    {
        Method = LoqtMethodNames.Parse(method, "--methods"),
        Layers = new LoqtOptions { Rank = Rank!.Value, Alpha = Alpha, ErrorCompensationIterations = ErrorCompensationIterations },
        Schedule = MergeSchedule.Exponential(UpdateInterval!.Value, IntervalGrowth),
        LearningRate = LearningRateOf(method),
        WarmupSteps = WarmupSteps!.Value,
        MaxGradNorm = MaxGradNorm,
        Steps = Steps,
        BatchSize = BatchSize,
        GradientAccumulation = GradientAccumulation,
        SequenceLength = SequenceLength,
        Seed = Seed,
    };

    /// <summary>The <c>loqt pretrain</c> arguments of one method's run.</summary>
    public IReadOnlyList<string> PretrainArguments(string method, string train, string valid, string output) =>
    [
        "pretrain", "--config", Config, "--tokenizer", TokenizerDirectory, "--dataset", train, "--eval-dataset", valid, "--output", output,
        "--method", method, "--steps", Invariant(Steps), "--batch-size", Invariant(BatchSize), "--grad-accum", Invariant(GradientAccumulation),
        "--seq-len", Invariant(SequenceLength), "--rank", Invariant(Rank!.Value), "--alpha", Invariant(Alpha),
        "--schedule", "exponential", "--update-interval", Invariant(UpdateInterval!.Value), "--interval-growth", Invariant(IntervalGrowth),
        "--ec-iterations", Invariant(ErrorCompensationIterations), "--lr", Invariant(LearningRateOf(method)), "--warmup", Invariant(WarmupSteps!.Value),
        "--lr-schedule", "cosine", "--max-grad-norm", Invariant(MaxGradNorm), "--dtype", DType, "--seed", Invariant(Seed), "--json",
    ];

    public JsonObject ToJson() => new()
    {
        ["methods"] = new JsonArray([.. Methods.Select(m => (JsonNode)m)]),
        ["steps"] = Steps,
        ["batch_size"] = BatchSize,
        ["grad_accum"] = GradientAccumulation,
        ["seq_len"] = SequenceLength,
        ["tokens_per_step"] = TokensPerStep,
        ["rank"] = Rank,
        ["alpha"] = Alpha,
        ["schedule"] = "exponential",
        ["update_interval"] = UpdateInterval,
        ["interval_growth"] = IntervalGrowth,
        ["ec_iterations"] = ErrorCompensationIterations,
        ["lr"] = LearningRate,
        ["lr_full"] = FullLearningRate,
        ["warmup"] = WarmupSteps,
        ["lr_schedule"] = "cosine",
        ["max_grad_norm"] = MaxGradNorm,
        ["dtype"] = DType,
        ["eval_lines"] = EvalLines,
        ["seed"] = Seed,
    };

    private double LearningRateOf(string method) => method == "full" ? FullLearningRate : LearningRate;

    private static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);
}
