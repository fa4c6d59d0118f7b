namespace LoQT.Training;

/// <summary>How a model is trained: LoQT, its unquantized ablation, or one of the baselines it is compared with.</summary>
public enum TrainingMethod
{
    /// <summary><c>loqt</c>: NF4 weights, NF4 projection P from the gradient's SVD, trainable B, periodic merges.</summary>
    Loqt,

    /// <summary><c>loqt-nq</c>: LoQT with neither W nor P quantized.</summary>
    LoqtNq,

    /// <summary><c>full</c>: full-rank training of every parameter.</summary>
    Full,

    /// <summary><c>lora</c>: frozen W plus trainable low-rank A and B, never merged.</summary>
    Lora,

    /// <summary><c>galore</c>: full-rank weights, optimizer state in a low-rank projection of the gradient.</summary>
    Galore,
}
