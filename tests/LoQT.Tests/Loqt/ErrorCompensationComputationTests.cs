using LoQT.Loqt;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>
/// Error compensation as it is computed for memory and speed: it forms its residuals in place and sums the error in row slices for matrices larger than a slice
/// (2M elements), and takes P⁺ through a Cholesky factor: the error it reports must still be ‖W − (deq(Q) + α·B·P)‖_F
/// of the pair it returns, and B must be the one the Moore–Penrose inverse gives.
/// </summary>
public sealed class ErrorCompensationComputationTests
{
    [Theory]
    [InlineData(ProjectionSide.Left)]
    [InlineData(ProjectionSide.Right)]
    public void LargeMatrix_ReportsTheErrorOfThePairItReturns(ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(5);
        const int rows = 1536, cols = 1600; // 2.46M elements: two row slices
        var w = randn([rows, cols], generator: generator);
        var p = side == ProjectionSide.Left
            ? linalg.qr(randn([cols, 8], generator: generator)).Q.t().contiguous()
            : linalg.qr(randn([rows, 8], generator: generator)).Q.contiguous();
        using var result = ErrorCompensation.Run(w, p, side, alpha: 0.5, iterations: 3);

        var lowRank = (side == ProjectionSide.Left ? result.Adapter.matmul(p) : p.matmul(result.Adapter)).mul(0.5);
        var direct = (w - (result.Weight.Dequantize(ScalarType.Float32) + lowRank)).to(ScalarType.Float64).norm().item<double>();

        // fp64 sums of the same fp32 terms in another order, and the low-rank product computed again: 1e-6 relative.
        Assert.Equal(direct, result.Error, direct * 1e-6);
        Assert.Equal(3, result.IterationErrors.Count);
        Assert.Equal(result.IterationErrors.Min(), result.Error);
    }

    [Theory]
    [InlineData(ProjectionSide.Left)]
    [InlineData(ProjectionSide.Right)]
    public void OneIteration_ChoosesBFromTheMoorePenroseInverse(ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(8);
        var w = randn([96, 80], generator: generator);
        var p = Projection(side, generator);
        using var result = ErrorCompensation.Run(w, p, side, alpha: 0.5, iterations: 1);

        var residual = w - Nf4Tensor(w);
        var expected = (side == ProjectionSide.Left ? residual.matmul(linalg.pinv(p)) : linalg.pinv(p).matmul(residual)) / 0.5;

        // The Cholesky route and LAPACK's SVD route to P⁺ agree to float rounding of these sizes.
        Assert.True(result.Adapter.allclose(expected, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void RankDeficientProjection_StillCompensates()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(9);
        var w = randn([96, 80], generator: generator);
        var p = Projection(ProjectionSide.Left, generator);
        p[1] = p[0]; // two equal rows: P Pᵀ is singular
        using var result = ErrorCompensation.Run(w, p, ProjectionSide.Left, alpha: 0.5, iterations: 2);

        using var plain = ErrorCompensation.Run(w, p, ProjectionSide.Left, alpha: 0.5, iterations: 0);
        Assert.True(double.IsFinite(result.Error));
        Assert.True(result.Error < plain.Error);
    }

    private static Tensor Projection(ProjectionSide side, Generator generator) =>
        side == ProjectionSide.Left
            ? linalg.qr(randn([80, 6], generator: generator)).Q.t().contiguous()
            : linalg.qr(randn([96, 6], generator: generator)).Q.contiguous();

    private static Tensor Nf4Tensor(Tensor w)
    {
        using var q = LoQT.Quantization.Nf4Tensor.Quantize(w);
        return q.Dequantize(ScalarType.Float32);
    }
}
