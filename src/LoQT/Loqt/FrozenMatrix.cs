using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>A frozen matrix of a LoQT layer (W or P): NF4-quantized, or dense. Owns its tensors.</summary>
public sealed class FrozenMatrix : IDisposable
{
    private FrozenMatrix(Nf4Tensor? quantized, Tensor? dense, long[] shape)
    {
        Quantized = quantized;
        Dense = dense;
        Shape = shape;
    }

    /// <summary>The NF4 form, or null when dense.</summary>
    public Nf4Tensor? Quantized { get; }

    /// <summary>The dense form, or null when quantized.</summary>
    public Tensor? Dense { get; }

    /// <summary>Whether the matrix is NF4.</summary>
    public bool IsQuantized => Quantized is not null;

    /// <summary>The matrix's shape.</summary>
    public long[] Shape { get; }

    /// <summary>Bytes held: NF4 storage, or the dense tensor's bytes.</summary>
    public long StorageBytes => Quantized?.StorageBytes ?? (Dense!.numel() * Dense.ElementSize);

    /// <summary>Wraps an NF4 tensor (taking ownership).</summary>
    /// <param name="quantized">The NF4 tensor; disposed with this object.</param>
    public static FrozenMatrix FromQuantized(Nf4Tensor quantized)
    {
        ArgumentNullException.ThrowIfNull(quantized);
        return new FrozenMatrix(quantized, null, quantized.Shape);
    }

    /// <summary>Wraps a copy of a dense tensor, converted to <paramref name="dtype"/>.</summary>
    /// <param name="dense">The values (not modified; not owned).</param>
    /// <param name="dtype">The dtype to keep it in.</param>
    public static FrozenMatrix FromDense(Tensor dense, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(dense);
        using var noGrad = no_grad();
        var copy = dense.detach().to(dtype, copy: true).contiguous().DetachFromDisposeScope();
        return new FrozenMatrix(null, copy, dense.shape);
    }

    /// <summary>NF4-quantizes <paramref name="values"/> when <paramref name="quantize"/>, else keeps a dense copy in <paramref name="denseDType"/>.</summary>
    /// <param name="values">The values (not modified).</param>
    /// <param name="quantize">Whether to quantize.</param>
    /// <param name="blockSize">NF4 block size.</param>
    /// <param name="doubleQuant">NF4 double quantization.</param>
    /// <param name="denseDType">The dtype of the dense form.</param>
    public static FrozenMatrix Create(Tensor values, bool quantize, int blockSize, bool doubleQuant, ScalarType denseDType) =>
        quantize ? FromQuantized(Nf4Tensor.Quantize(values.detach(), blockSize, doubleQuant)) : FromDense(values, denseDType);

    /// <summary>
    /// The values as a tensor of <paramref name="dtype"/> (the caller disposes it): new storage when quantized or
    /// converted, but for a dense matrix already of <paramref name="dtype"/> a tensor sharing the stored matrix's
    /// storage, which callers must not modify.
    /// </summary>
    /// <param name="dtype">The dtype wanted.</param>
    public Tensor Values(ScalarType dtype)
    {
        if (Quantized is not null)
        {
            return Quantized.Dequantize(dtype);
        }

        using var noGrad = no_grad();
        return Dense!.to(dtype);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Quantized?.Dispose();
        Dense?.Dispose();
    }
}
