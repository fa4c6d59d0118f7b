using LoQT.Loqt;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>The reference's <c>proj_type="std"</c> rule and the shapes of P and B it implies.</summary>
public sealed class LoqtLinearShapeTests
{
    [Theory]
    [InlineData(64, 172, ProjectionSide.Left)]
    [InlineData(172, 64, ProjectionSide.Right)]
    [InlineData(64, 64, ProjectionSide.Left)] // in ≤ out, equality included
    public void Side_IsLeftExactlyWhenInIsAtMostOut(long inFeatures, long outFeatures, ProjectionSide expected)
    {
        Assert.Equal(expected, ProjectionSides.For(inFeatures, outFeatures));
    }

    [Fact]
    public void LeftLayer_HasPOfRankByInAndBOfOutByRank()
    {
        using var w = randn(172, 64);
        using var layer = new LoqtLinear("up", w, null, new LoqtOptions { Rank = 8 });

        Assert.Equal(ProjectionSide.Left, layer.Side);
        Assert.Equal([8L, 64], layer.Projection.Shape);
        Assert.Equal([172L, 8], layer.Adapter.shape);
    }

    [Fact]
    public void RightLayer_HasPOfOutByRankAndBOfRankByIn()
    {
        using var w = randn(64, 172);
        using var layer = new LoqtLinear("down", w, null, new LoqtOptions { Rank = 8 });

        Assert.Equal(ProjectionSide.Right, layer.Side);
        Assert.Equal([64L, 8], layer.Projection.Shape);
        Assert.Equal([8L, 172], layer.Adapter.shape);
    }

    [Fact]
    public void OnlyBAndTheBiasAreTrainable()
    {
        using var w = randn(172, 64);
        using var b = randn(172);
        using var layer = new LoqtLinear("up", w, b, new LoqtOptions { Rank = 8 });

        Assert.Equal(["adapter", "bias"], layer.named_parameters().Select(p => p.name).OrderBy(n => n, StringComparer.Ordinal));
    }

    [Fact]
    public void BeforeTheFirstReinitialization_TheLayerIsItsNf4Weight()
    {
        using var scope = NewDisposeScope();
        var w = TinyLlamaTensors.Weight(TinyLlamaTensors.UpProj);
        using var layer = new LoqtLinear("up", w, null, new LoqtOptions { Rank = 8 });
        var x = randn(3, 64);

        using var q = LoQT.Quantization.Nf4Tensor.Quantize(w);
        var expected = x.matmul(q.Dequantize(ScalarType.Float32).t());

        Assert.Equal(0f, (layer.call(x) - expected).abs().max().item<float>());
    }

    [Theory]
    [InlineData(64)]
    [InlineData(100)]
    public void RankOfAtLeastMinInOut_IsRejectedNamingTheOptionAndLayer(int rank)
    {
        using var w = randn(172, 64);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new LoqtLinear("model.layers.0.mlp.up_proj", w, null, new LoqtOptions { Rank = rank }));
        Assert.Equal("rank", error.ParamName);
        Assert.Contains("model.layers.0.mlp.up_proj", error.Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.5)]
    [InlineData(double.NaN)]
    public void NonPositiveAlpha_IsRejectedNamingTheOption(double alpha)
    {
        using var w = randn(172, 64);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new LoqtLinear("up", w, null, new LoqtOptions { Rank = 8, Alpha = alpha }));
        Assert.Equal("alpha", error.ParamName);
    }
}
