namespace LoQT.Training;

/// <summary>The optimizer whose state the trainable parameters carry.</summary>
public enum OptimizerKind
{
    /// <summary><c>adamw</c>: AdamW with fp32 first and second moments.</summary>
    AdamW,

    /// <summary><c>adamw8bit</c>: AdamW with blockwise dynamic-quantized 8-bit moments (bitsandbytes semantics, block 256).</summary>
    AdamW8bit,
}
