namespace LoQT.Training;

/// <summary>The floating-point type of activations and of the unquantized trainable tensors.</summary>
public enum ComputeDtype
{
    /// <summary><c>bf16</c>: bfloat16, 2 bytes per element.</summary>
    BFloat16,

    /// <summary><c>fp32</c>: float32, 4 bytes per element.</summary>
    Float32,
}
