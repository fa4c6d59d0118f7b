using LoQT.Loqt;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>The randomized range finder (its last step a QR and a small SVD) finds the subspace a full SVD finds.</summary>
public sealed class RandomizedProjectionTests
{
    [Theory]
    [InlineData(ProjectionSide.Left)]
    [InlineData(ProjectionSide.Right)]
    public void DecayingSpectrum_SameTopSubspaceAsTheFullSvd(ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(21);
        // A 120 × 200 gradient-like matrix whose singular values fall off geometrically (ratio 0.8).
        var u = linalg.qr(randn([120, 60], generator: generator)).Q;
        var v = linalg.qr(randn([200, 60], generator: generator)).Q;
        var g = u.mul(pow(0.8, arange(60, ScalarType.Float32))).matmul(v.t());

        using var sketch = new Generator(4);
        var randomized = GradientProjection.Compute(g, 8, side, SvdOptions.Randomized(), sketch);
        var full = GradientProjection.Compute(g, 8, side, SvdOptions.Full);

        // Compare orthogonal projectors (signs and order within the subspace do not matter). With two power iterations the
        // sketch's error falls like (σ_j/σ_8)^5, and the 8 oversamples take directions 9 to 16 along: what leaks in comes
        // from σ_17 on, (0.8^9)^5 ≈ 4e-5; 1e-3 leaves room for the random draw.
        Tensor Projector(Tensor p) => side == ProjectionSide.Left ? p.t().matmul(p) : p.matmul(p.t());
        Assert.True((Projector(randomized) - Projector(full)).abs().max().item<float>() < 1e-3);
    }

    [Theory]
    [InlineData(ProjectionSide.Left)]
    [InlineData(ProjectionSide.Right)]
    public void GradientOfLowerRankThanTheSketch_TopSubspaceIsExactAndPOrthonormal(ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        // A gradient summed over 5 tokens has rank 5; rank 12 asks for more directions than it has.
        var g = TokenGradient(tokens: 5, outFeatures: 90, inFeatures: 70, seed: 3);
        using var sketch = new Generator(8);
        var randomized = GradientProjection.Compute(g, 12, side, SvdOptions.Randomized(), sketch);
        var full = GradientProjection.Compute(g, 12, side, SvdOptions.Full);

        // P's rows (left) or columns (right) are orthonormal, and the span of the first five, the directions that carry
        // the gradient, is the full SVD's to fp32 rounding; the other seven are any orthonormal completion in both.
        var gramOfP = side == ProjectionSide.Left ? randomized.matmul(randomized.t()) : randomized.t().matmul(randomized);
        Assert.True((gramOfP - eye(12)).abs().max().item<float>() < 1e-5);
        Tensor TopProjector(Tensor p) => side == ProjectionSide.Left
            ? p.narrow(0, 0, 5).t().matmul(p.narrow(0, 0, 5))
            : p.narrow(1, 0, 5).matmul(p.narrow(1, 0, 5).t());
        Assert.True((TopProjector(randomized) - TopProjector(full)).abs().max().item<float>() < 1e-4);
    }

    [Fact]
    public void GradientOfLowerRankThanTheSketch_PowerIterationsAreSkipped()
    {
        using var scope = NewDisposeScope();
        var g = TokenGradient(tokens: 5, outFeatures: 90, inFeatures: 70, seed: 3);

        // The sketch already spans G's range, so the result is the one with no power iterations, bit for bit.
        var none = GradientProjection.Compute(g, 12, ProjectionSide.Left, SvdOptions.Randomized(powerIterations: 0), new Generator(8));
        var two = GradientProjection.Compute(g, 12, ProjectionSide.Left, SvdOptions.Randomized(powerIterations: 2), new Generator(8));
        Assert.True(none.eq(two).all().item<bool>());
    }

    [Fact]
    public void GradientOfFullRank_PowerIterationsRun()
    {
        using var scope = NewDisposeScope();
        var g = TokenGradient(tokens: 200, outFeatures: 90, inFeatures: 70, seed: 3);

        // The counterpart of the test above: a sketch of 20 columns cannot hold a rank-70 gradient, so iterating changes P.
        var none = GradientProjection.Compute(g, 12, ProjectionSide.Left, SvdOptions.Randomized(powerIterations: 0), new Generator(8));
        var two = GradientProjection.Compute(g, 12, ProjectionSide.Left, SvdOptions.Randomized(powerIterations: 2), new Generator(8));
        Assert.False(none.allclose(two, rtol: 0, atol: 1e-3));
    }

    // ∂L/∂W of a linear layer over T tokens: Σ_t δ_t x_tᵀ, of rank at most T.
    private static Tensor TokenGradient(int tokens, int outFeatures, int inFeatures, long seed)
    {
        using var generator = new Generator((ulong)seed);
        var delta = randn([tokens, outFeatures], generator: generator);
        var x = randn([tokens, inFeatures], generator: generator);
        return delta.t().matmul(x);
    }
}
