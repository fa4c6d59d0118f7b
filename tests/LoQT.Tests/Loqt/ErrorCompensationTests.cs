using LoQT.Loqt;
using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>
/// Error compensation on real tiny-llama weights, with P the (NF4-quantized) top singular vectors of the layer's real
/// gradient from the golden batch: what LoQT's re-initialization does.
/// </summary>
public sealed class ErrorCompensationTests
{
    private const int Rank = 16;
    private const double Alpha = 0.5;

    public static TheoryData<string, ProjectionSide> Layers => new()
    {
        { TinyLlamaTensors.UpProj, ProjectionSide.Left },
        { TinyLlamaTensors.DownProj, ProjectionSide.Right },
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void Compensation_LowersTheErrorBelowPlainNf4(string layer, ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        var (w, p) = WeightAndProjection(layer, side);

        using var none = ErrorCompensation.Run(w, p, side, Alpha, iterations: 0);
        using var five = ErrorCompensation.Run(w, p, side, Alpha, iterations: 5);

        // The NF4 residual is close to white noise, so B·P (a rank-16 projection of it onto 16 of 64 directions) can
        // cancel about 16/64 of its energy: the error falls to about √(1 − 1/4) ≈ 0.87 of plain NF4's. 0.95 leaves
        // room for the residual not being exactly white while still failing if compensation did nothing.
        Assert.True(five.Error < 0.95 * none.Error, $"k=5 error {five.Error} vs k=0 error {none.Error}");
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void MoreIterations_NeverMakeTheErrorWorse(string layer, ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        var (w, p) = WeightAndProjection(layer, side);

        var errors = new List<double>();
        for (var k = 0; k <= 5; k++)
        {
            using var result = ErrorCompensation.Run(w, p, side, Alpha, k);
            errors.Add(result.Error);
        }

        for (var k = 1; k <= 5; k++)
        {
            Assert.True(errors[k] <= errors[k - 1], $"k={k}: {errors[k]} > k={k - 1}: {errors[k - 1]} (all: {string.Join(", ", errors)})");
        }

        Assert.True(errors[5] < errors[0]);
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void ReportedError_IsTheDistanceOfTheReturnedPairFromW(string layer, ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        var (w, p) = WeightAndProjection(layer, side);

        using var result = ErrorCompensation.Run(w, p, side, Alpha, iterations: 3);

        // Recomputed here from Q and B alone, in double: ‖W − (deq(Q) + α·B·P)‖_F (left) or with α·P·B (right).
        var b = result.Adapter.to(ScalarType.Float64);
        var p64 = p.to(ScalarType.Float64);
        var lowRank = (side == ProjectionSide.Left ? b.matmul(p64) : p64.matmul(b)) * Alpha;
        var distance = (w.to(ScalarType.Float64) - result.Weight.Dequantize(ScalarType.Float32).to(ScalarType.Float64) - lowRank).norm().item<double>();
        Assert.Equal(distance, result.Error, distance * 1e-5); // fp32 arithmetic in the code under test
        Assert.Equal(side == ProjectionSide.Left ? new[] { w.shape[0], (long)Rank } : new[] { (long)Rank, w.shape[1] }, result.Adapter.shape);
    }

    [Fact]
    public void ZeroIterations_MeanNf4OfWAndAZeroB()
    {
        using var scope = NewDisposeScope();
        var (w, p) = WeightAndProjection(TinyLlamaTensors.UpProj, ProjectionSide.Left);

        using var result = ErrorCompensation.Run(w, p, ProjectionSide.Left, Alpha, iterations: 0);
        using var plain = Nf4Tensor.Quantize(w);

        Assert.Equal(plain.Packed.bytes.ToArray(), result.Weight.Packed.bytes.ToArray());
        Assert.Equal(plain.Absmax.bytes.ToArray(), result.Weight.Absmax.bytes.ToArray());
        Assert.Equal(0.0, result.Adapter.abs().max().item<float>());
        Assert.Equal((w - plain.Dequantize(ScalarType.Float32)).norm().item<float>(), result.Error, 1e-5);
    }

    /// <summary>W of the layer and P as the layer uses it: the gradient's top-r singular vectors, NF4-quantized and dequantized.</summary>
    private static (Tensor W, Tensor P) WeightAndProjection(string layer, ProjectionSide side)
    {
        var w = TinyLlamaTensors.Weight(layer);
        using var g = TinyLlamaTensors.Gradient(layer);
        Assert.Equal(side, ProjectionSides.For(w.shape[1], w.shape[0]));
        using var exact = GradientProjection.Compute(g, Rank, side);
        using var quantized = Nf4Tensor.Quantize(exact);
        return (w, quantized.Dequantize(ScalarType.Float32));
    }
}
