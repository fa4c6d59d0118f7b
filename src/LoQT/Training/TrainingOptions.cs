using LoQT.Loqt;
using LoQT.Models.Llama;

namespace LoQT.Training;

/// <summary>What a run trains on.</summary>
public enum TrainingTask
{
    /// <summary>Continued pretraining: next-token loss on every token of packed text.</summary>
    CausalLm,

    /// <summary>Fine-tuning on prompt/completion pairs: loss on the completion tokens only.</summary>
    Completion,
}

/// <summary>Everything that decides a training run (the <c>loqt adapt</c> / <c>loqt pretrain</c> options).</summary>
public sealed record TrainingOptions
{
    /// <summary>LoQT or a baseline.</summary>
    public LoqtMethod Method { get; init; } = LoqtMethod.Loqt;

    /// <summary>Rank, α, quantization switches, error compensation, SVD, compute dtype of the adapted layers.</summary>
    public LoqtOptions Layers { get; init; } = new();

    /// <summary>When adapters are merged and new projections taken (optimizer steps).</summary>
    public MergeSchedule Schedule { get; init; } = MergeSchedule.Exponential(100, 1.2);

    /// <summary>The optimizer.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;

    /// <summary>Step each parameter inside backward as soon as its gradient is ready, and free the gradient.</summary>
    public bool PerLayerUpdates { get; init; }

    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Linear warmup steps.</summary>
    public long WarmupSteps { get; init; }

    /// <summary>Learning-rate schedule after warmup.</summary>
    public LearningRateScheduleKind LearningRateSchedule { get; init; } = LearningRateScheduleKind.Cosine;

    /// <summary>Decoupled weight decay.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Gradient clipping threshold (global 2-norm); 0 turns clipping off.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Optimizer steps to train for.</summary>
    public long Steps { get; init; } = 100;

    /// <summary>Sequences per micro-batch.</summary>
    public int BatchSize { get; init; } = 4;

    /// <summary>Micro-batches per optimizer step.</summary>
    public int GradientAccumulation { get; init; } = 1;

    /// <summary>Tokens per sequence.</summary>
    public int SequenceLength { get; init; } = 256;

    /// <summary>Causal LM or prompt/completion.</summary>
    public TrainingTask Task { get; init; } = TrainingTask.CausalLm;

    /// <summary>Train each line as its own (padded) sequence instead of packing.</summary>
    public bool NoPacking { get; init; }

    /// <summary>Evaluate every this many steps (0: only at the end, when an eval dataset is given).</summary>
    public long EvalEvery { get; init; }

    /// <summary>Save a checkpoint every this many steps (0: only at the end).</summary>
    public long SaveEvery { get; init; }

    /// <summary>Checkpoints kept in the output directory.</summary>
    public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Seed of data order and of everything random in the layers.</summary>
    public long Seed { get; init; }

    /// <summary>Which linear layers the method adapts (suffixes of their names).</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = LlamaLoadOptions.AllProjections;

    /// <summary>Whether the method re-initializes adapters on the merge schedule.</summary>
    public bool UsesReinitialization => Method is LoqtMethod.Loqt or LoqtMethod.LoqtNoQuantization;

    /// <summary>Checks every option that can be checked without the model, naming the option in the error.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public void Validate()
    {
        Require(Steps >= 1, "steps", Steps, "must be at least 1");
        Require(BatchSize >= 1, "batch-size", BatchSize, "must be at least 1");
        Require(GradientAccumulation >= 1, "grad-accum", GradientAccumulation, "must be at least 1");
        Require(SequenceLength >= 2, "seq-len", SequenceLength, "must be at least 2 (a next-token loss needs two tokens)");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), "lr", LearningRate, "must be a positive number");
        Require(WarmupSteps >= 0, "warmup", WarmupSteps, "must not be negative");
        Require(WeightDecay >= 0, "weight-decay", WeightDecay, "must not be negative");
        Require(MaxGradNorm >= 0, "max-grad-norm", MaxGradNorm, "must not be negative (0 turns clipping off)");
        Require(EvalEvery >= 0, "eval-every", EvalEvery, "must not be negative");
        Require(SaveEvery >= 0, "save-every", SaveEvery, "must not be negative");
        Require(KeepCheckpoints >= 1, "keep-checkpoints", KeepCheckpoints, "must be at least 1");
        Require(TargetModules.Count > 0, "target-modules", TargetModules.Count, "must name at least one layer");
        if (Method != LoqtMethod.Full)
        {
            Layers.Validate();
        }
    }

    /// <summary>Checks the options against the model: ranks against layer shapes, sequence length against positions.</summary>
    public void ValidateFor(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Require(SequenceLength <= config.MaxPositionEmbeddings, "seq-len", SequenceLength,
            $"is longer than the model's {config.MaxPositionEmbeddings} positions (max_position_embeddings)");
        if (Method == LoqtMethod.Full)
        {
            return;
        }

        var smallest = Math.Min(config.HiddenSize, Math.Min(config.IntermediateSize, config.NumKeyValueHeads * config.HeadDim));
        Require(Layers.Rank < smallest, "rank", Layers.Rank,
            $"must be smaller than min(in, out) = {smallest} of the smallest adapted layer of this model");
    }

    private static void Require(bool condition, string option, object value, string rule)
    {
        if (!condition)
        {
            throw new ArgumentOutOfRangeException(option, value, $"--{option} {value} {rule}.");
        }
    }
}
