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
}
