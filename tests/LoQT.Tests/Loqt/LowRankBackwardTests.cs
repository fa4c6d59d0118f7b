using LoQT.Loqt;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>
/// Backward of a LoQT layer whose P is NF4, which does not keep the dequantized P from forward but dequantizes it again:
/// its gradients must be those of the formula it computes.
/// </summary>
public sealed class LowRankBackwardTests
{
    [Theory]
    [InlineData(24, 16)] // in ≤ out: P on the left, y = x·Wᵀ + α·(x·Pᵀ)·Bᵀ
    [InlineData(16, 24)] // in > out: P on the right, y = x·Wᵀ + α·(x·Bᵀ)·Pᵀ
    public void Gradients_WithAQuantizedProjection_MatchAutogradOfTheFormula(int outFeatures, int inFeatures)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(3);
        var layer = new LoqtLinear("model.layers.0.mlp.up_proj", randn([outFeatures, inFeatures], generator: generator), null,
            new LoqtOptions { Rank = 4, ErrorCompensationIterations = 2 });
        layer.ArmReinitialization();
        layer.call(randn([5, inFeatures], generator: generator).requires_grad_()).sum().backward(); // P from the gradient, NF4
        Assert.True(layer.Projection.IsQuantized);
        layer.Adapter.grad = null;

        var x = randn([5, inFeatures], generator: generator).requires_grad_();
        var upstream = randn([5, outFeatures], generator: generator);
        layer.call(x).mul(upstream).sum().backward();

        var xRef = x.detach().clone().requires_grad_();
        var bRef = layer.Adapter.detach().clone().requires_grad_();
        var w = layer.Weight.Values(ScalarType.Float32);
        var p = layer.Projection.Values(ScalarType.Float32);
        var lowRank = layer.Side == ProjectionSide.Left ? xRef.matmul(p.t()).matmul(bRef.t()) : xRef.matmul(bRef.t()).matmul(p.t());
        (xRef.matmul(w.t()) + (lowRank * layer.Alpha)).mul(upstream).sum().backward();

        // Same products in fp32, grouped differently by autograd: agreement to float rounding.
        Assert.True(x.grad!.allclose(xRef.grad!, rtol: 1e-5, atol: 1e-5));
        Assert.True(layer.Adapter.grad!.allclose(bRef.grad!, rtol: 1e-5, atol: 1e-5));
        layer.Dispose();
    }
}
