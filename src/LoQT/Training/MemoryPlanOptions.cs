namespace LoQT.Training;

/// <summary>What a training run looks like, as far as its memory is concerned.</summary>
public sealed record MemoryPlanOptions
{
    /// <summary>The training method. Default <see cref="TrainingMethod.Loqt"/>.</summary>
    public TrainingMethod Method { get; init; } = TrainingMethod.Loqt;

    /// <summary>
    /// Rank of P and B (LoQT), of A and B (LoRA), of the projection (GaLore); ignored by full. Null: the reference's
    /// default 128, or a quarter of the hidden size for models narrower than 512 (so that the small presets work).
    /// The plan's options carry the rank used.
    /// </summary>
    public int? Rank { get; init; }

    /// <summary>Tokens per sequence. Default 256 (the reference's <c>max_length</c>).</summary>
    public int SequenceLength { get; init; } = 256;

    /// <summary>Sequences per forward/backward pass (per micro-batch). Default 1.</summary>
    public int BatchSize { get; init; } = 1;

    /// <summary>The optimizer. Default AdamW.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;

    /// <summary>Per-layer updates: each parameter is stepped as soon as its gradient exists and the gradient is freed.</summary>
    public bool PerLayerUpdates { get; init; }

    /// <summary>Compute dtype of activations and of unquantized tensors. Default bf16.</summary>
    public ComputeDtype Dtype { get; init; } = ComputeDtype.BFloat16;

    /// <summary>Hold W in NF4: honoured by <c>loqt</c> and <c>lora</c> (QLoRA-style); <c>loqt-nq</c>, <c>full</c> and <c>galore</c> never quantize.</summary>
    public bool QuantizeWeights { get; init; } = true;

    /// <summary>Hold P in NF4: honoured by <c>loqt</c> only.</summary>
    public bool QuantizeProjection { get; init; } = true;

    /// <summary>Double quantization of the NF4 absmax values (8-bit, nested blocks of 256).</summary>
    public bool DoubleQuant { get; init; }

    /// <summary>
    /// How re-initializations (and GaLore) take P from a gradient: a full thin SVD (the reference; its LAPACK workspace
    /// is the larger part of the update-step transient) or a randomized range finder. Default full.
    /// </summary>
    public LoQT.Loqt.SvdOptions Svd { get; init; } = LoQT.Loqt.SvdOptions.Full;

    /// <summary>Error-compensation iterations at a re-initialization (0: B = 0, only W is requantized). Default 5.</summary>
    public int ErrorCompensationIterations { get; init; } = 5;

    /// <summary>Where training runs: decides the framework overhead. Default CPU.</summary>
    public DeviceKind Device { get; init; } = DeviceKind.Cpu;

    /// <summary>
    /// Whether embeddings, norms and lm_head are trained by the low-rank methods (they are in the reference's
    /// pretraining; fine-tuning may freeze them). <c>full</c> always trains them.
    /// </summary>
    public bool TrainNonQuantizedParameters { get; init; } = true;
}
