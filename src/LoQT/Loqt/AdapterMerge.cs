using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// The effective weight of an adapted layer, W + α·(low-rank product), computed in fp32: the one definition that
/// <see cref="LoqtLinear"/>, <see cref="LoraLinear"/> and the exporter share, so an exported weight is bit for bit what
/// the layer computes with.
/// </summary>
public static class AdapterMerge
{
    /// <summary>α·B·P (left) or α·P·B (right) in fp32, [out, in], as a new tensor.</summary>
    /// <param name="projection">P: [r, in] (left) or [out, r] (right).</param>
    /// <param name="adapter">B: [out, r] (left) or [r, in] (right), any floating dtype.</param>
    /// <param name="side">Which side P is on.</param>
    /// <param name="alpha">α.</param>
    public static Tensor LoqtProduct(FrozenMatrix projection, Tensor adapter, ProjectionSide side, double alpha)
    {
        ArgumentNullException.ThrowIfNull(projection);
        ArgumentNullException.ThrowIfNull(adapter);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var p = projection.Values(ScalarType.Float32);
        var b = adapter.detach().to(ScalarType.Float32);
        var product = side == ProjectionSide.Left ? b.matmul(p) : p.matmul(b);
        return product.mul_(alpha).MoveToOuterDisposeScope();
    }

    /// <summary>deq(W) + α·B·P (left) or deq(W) + α·P·B (right), [out, in], as a new tensor of <paramref name="dtype"/>.</summary>
    /// <param name="weight">W (NF4 or dense), [out, in].</param>
    /// <param name="projection">P.</param>
    /// <param name="adapter">B.</param>
    /// <param name="side">Which side P is on.</param>
    /// <param name="alpha">α.</param>
    /// <param name="dtype">The dtype of the result (the sum is formed in fp32 and converted once).</param>
    public static Tensor LoqtMerged(FrozenMatrix weight, FrozenMatrix projection, Tensor adapter, ProjectionSide side, double alpha, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(weight);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var product = LoqtProduct(projection, adapter, side, alpha);
        return Sum(weight, product, 1.0).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>deq(W) + α·B·A (LoRA, α not divided by r, as the LoQT reference does), [out, in], as a new tensor of <paramref name="dtype"/>.</summary>
    /// <param name="weight">W (NF4 or dense), [out, in].</param>
    /// <param name="loraA">A: [r, in].</param>
    /// <param name="loraB">B: [out, r].</param>
    /// <param name="alpha">α.</param>
    /// <param name="dtype">The dtype of the result.</param>
    public static Tensor LoraMerged(FrozenMatrix weight, Tensor loraA, Tensor loraB, double alpha, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(loraA);
        ArgumentNullException.ThrowIfNull(loraB);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var product = loraB.detach().to(ScalarType.Float32).matmul(loraA.detach().to(ScalarType.Float32));
        return Sum(weight, product, alpha).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>deq(W) + scale·product in fp32: in place in the dequantized copy, but never into a dense fp32 W, which <see cref="FrozenMatrix.Values"/> hands back itself.</summary>
    private static Tensor Sum(FrozenMatrix weight, Tensor product, double scale)
    {
        var values = weight.Values(ScalarType.Float32);
        var shared = weight.Dense is { } dense && dense.dtype == ScalarType.Float32;
        return shared ? values.add(product, scale) : values.add_(product, scale);
    }
}
