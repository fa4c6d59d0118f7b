using LoQT.Loqt;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>The merged weight W + α·(low-rank product) that layers compute with and exports write.</summary>
public sealed class AdapterMergeTests
{
    private static LoqtLinear DenseLoqtLayer()
    {
        using var weight = randn(24, 16, generator: new Generator(3));
        var layer = new LoqtLinear("layer", weight, null, new LoqtOptions { Rank = 2, QuantizeWeight = false, QuantizeProjection = false });
        using var gradient = randn(24, 16, generator: new Generator(4));
        layer.Reinitialize(gradient);
        using (no_grad())
        {
            layer.Adapter.copy_(randn(layer.Adapter.shape, generator: new Generator(5)));
        }

        return layer;
    }

    [Fact]
    public void MergedWeight_OfAnUnquantizedFp32Layer_LeavesItsWeightUnchanged()
    {
        using var layer = DenseLoqtLayer();
        using var before = layer.Weight.Dense!.clone();

        using var first = layer.MergedWeight();
        using var second = layer.MergedWeight();

        Assert.True(layer.Weight.Dense!.equal(before).all().item<bool>(), "MergedWeight modified W");
        Assert.True(first.equal(second).all().item<bool>());
    }

    [Fact]
    public void LoqtMerged_IsTheWeightPlusAlphaTimesTheProduct()
    {
        using var layer = DenseLoqtLayer();
        using var merged = layer.MergedWeight();
        using var p = layer.Projection.Values(ScalarType.Float64);
        using var b = layer.Adapter.detach().to(ScalarType.Float64);
        using var expected = layer.Weight.Dense!.to(ScalarType.Float64) + (layer.Alpha * b.matmul(p));

        // fp32 sums of fp32 products: within a few ulps of the fp64 reference.
        Assert.True(merged.to(ScalarType.Float64).allclose(expected, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void LoraMerged_OfAnUnquantizedFp32Layer_LeavesItsWeightUnchanged()
    {
        using var weight = randn(24, 16, generator: new Generator(3));
        using var layer = new LoraLinear("layer", weight, null, new LoqtOptions { Rank = 2, QuantizeWeight = false });
        using (no_grad())
        {
            layer.LoraB.copy_(randn(layer.LoraB.shape, generator: new Generator(5)));
        }

        using var before = layer.Weight.Dense!.clone();

        using var merged = layer.MergedWeight();

        Assert.True(layer.Weight.Dense!.equal(before).all().item<bool>(), "MergedWeight modified W");
    }
}
