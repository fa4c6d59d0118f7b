using LoQT.Loqt;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>
/// The custom backward of <see cref="LoqtLinear"/> against plain torch autograd over the same dense math
/// y = x·deq(W)ᵀ + α·(x·Pᵀ)·Bᵀ (left) or x·deq(W)ᵀ + α·x·(P·B)ᵀ (right), on a real tiny-llama layer.
/// </summary>
public sealed class LoqtLinearAutogradTests
{
    private const int Rank = 8;

    public static TheoryData<string> Layers => [TinyLlamaTensors.UpProj, TinyLlamaTensors.DownProj];

    [Theory]
    [MemberData(nameof(Layers))]
    public void GradientsOfBAndOfTheInput_EqualPlainAutogradOnTheDenseMath(string layerName)
    {
        using var scope = NewDisposeScope();
        using var layer = ReinitializedLayer(layerName, new LoqtOptions { Rank = Rank });
        var x = randn([2, 5, layer.InFeatures], generator: new Generator(7)).requires_grad_(true);
        var c = randn([2, 5, layer.OutFeatures], generator: new Generator(8));

        var y = layer.call(x);
        (y * c).sum().backward();

        // The reference: the same W and P as dense tensors, B as a leaf, torch's own autograd.
        var w = layer.Weight.Values(ScalarType.Float32);
        var p = layer.Projection.Values(ScalarType.Float32);
        var b = layer.Adapter.detach().clone().requires_grad_(true);
        var xr = x.detach().clone().requires_grad_(true);
        var lowRank = layer.Side == ProjectionSide.Left ? xr.matmul(p.t()).matmul(b.t()) : xr.matmul(p.matmul(b).t());
        var yr = xr.matmul(w.t()) + (lowRank * layer.Alpha);
        (yr * c).sum().backward();

        // fp32 sums of at most 172 products (and 10 rows for B's gradient), in different orders: relative 1e-5.
        AssertClose(yr, y, "output");
        AssertClose(xr.grad!, x.grad!, "input gradient");
        AssertClose(b.grad!, layer.Adapter.grad!, "gradient of B");
    }

    [Fact]
    public void OrdinaryBackward_KeepsNoFullSizeWeightGradient()
    {
        using var scope = NewDisposeScope();
        using var layer = ReinitializedLayer(TinyLlamaTensors.UpProj, new LoqtOptions { Rank = Rank });
        var x = randn(4, layer.InFeatures);

        layer.call(x).sum().backward();

        Assert.False(layer.HoldsFullGradient);
        Assert.Equal(layer.Adapter.shape, layer.Adapter.grad!.shape);
        Assert.Equal(1, layer.ReinitializationCount); // only the set-up re-initialization ran
    }

    [Fact]
    public void ArmedLayer_HoldsItsFullGradientOnlyUntilItsLastMicroBatch()
    {
        using var scope = NewDisposeScope();
        using var layer = ReinitializedLayer(TinyLlamaTensors.UpProj, new LoqtOptions { Rank = Rank });
        layer.ArmReinitialization(microBatches: 2);

        layer.call(randn(4, layer.InFeatures)).sum().backward();
        Assert.True(layer.HoldsFullGradient);
        Assert.True(layer.IsArmed);
        Assert.Null(layer.Adapter.grad); // an armed step produces no gradient for B: it takes no update
        Assert.Equal(1, layer.ReinitializationCount);

        layer.call(randn(4, layer.InFeatures)).sum().backward();
        Assert.False(layer.HoldsFullGradient);
        Assert.False(layer.IsArmed);
        Assert.Equal(2, layer.ReinitializationCount);
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void ArmedGradientAccumulation_TakesPFromTheSumOfTheMicroBatchGradients(string layerName)
    {
        using var scope = NewDisposeScope();
        var options = new LoqtOptions { Rank = 4, QuantizeWeight = false, QuantizeProjection = false };
        using var layer = ReinitializedLayer(layerName, options);
        var generator = new Generator(11);
        var micro = Enumerable.Range(0, 2).Select(_ => (X: randn([12, layer.InFeatures], generator: generator), C: randn([12, layer.OutFeatures], generator: generator))).ToArray();

        // The reference gradient of each micro-batch at the layer's current effective weight, by torch autograd.
        var merged = layer.MergedWeight();
        var gradients = micro.Select(m =>
        {
            var wr = merged.clone().requires_grad_(true);
            (m.X.matmul(wr.t()) * m.C).sum().backward();
            return wr.grad!.clone();
        }).ToArray();

        layer.ArmReinitialization(microBatches: 2);
        foreach (var (x, c) in micro)
        {
            (layer.call(x) * c).sum().backward();
        }

        var actual = Projector(layer.Projection.Values(ScalarType.Float32), layer.Side);
        var ofTheSum = Projector(GradientProjection.Compute(gradients[0] + gradients[1], 4, layer.Side), layer.Side);
        var ofTheLast = Projector(GradientProjection.Compute(gradients[1], 4, layer.Side), layer.Side);

        // Projectors onto the top-4 subspace (sign-free); the gradients differ by fp32 rounding only.
        Assert.True((actual - ofTheSum).abs().max().item<float>() < 1e-4);
        Assert.True((actual - ofTheLast).abs().max().item<float>() > 1e-2);
    }

    /// <summary>A layer from a real weight, re-initialized once from its real gradient, with a random nonzero B.</summary>
    internal static LoqtLinear ReinitializedLayer(string layerName, LoqtOptions options)
    {
        using var scope = NewDisposeScope();
        var w = TinyLlamaTensors.Weight(layerName);
        var layer = new LoqtLinear(layerName, w, null, options);
        layer.Reinitialize(TinyLlamaTensors.Gradient(layerName));
        using (no_grad())
        {
            layer.Adapter.copy_(randn(layer.Adapter.shape, generator: new Generator(3)) * 0.05);
        }

        return layer;
    }

    /// <summary>PᵀP (left, P r × in) or P·Pᵀ (right, P out × r): the orthogonal projector onto P's span.</summary>
    private static Tensor Projector(Tensor p, ProjectionSide side) => side == ProjectionSide.Left ? p.t().matmul(p) : p.matmul(p.t());

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var scale = expected.abs().max().item<float>();
        var difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference <= 1e-5 * scale, $"{what}: max difference {difference} at scale {scale}");
    }
}
