using LoQT.Loqt;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>P from a real tiny-llama gradient: the top singular vectors on the smaller side, full or randomized SVD.</summary>
public sealed class GradientProjectionTests
{
    private const int Rank = 16;

    public static TheoryData<string, ProjectionSide> Layers => new()
    {
        { TinyLlamaTensors.UpProj, ProjectionSide.Left },
        { TinyLlamaTensors.DownProj, ProjectionSide.Right },
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void FullSvd_GivesOrthonormalTopSingularVectors(string layer, ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        var g = TinyLlamaTensors.Gradient(layer);

        var p = GradientProjection.Compute(g, Rank, side);

        Assert.Equal(side == ProjectionSide.Left ? new[] { (long)Rank, g.shape[1] } : new[] { g.shape[0], (long)Rank }, p.shape);
        var gram = side == ProjectionSide.Left ? p.matmul(p.t()) : p.t().matmul(p);
        Assert.True((gram - eye(Rank)).abs().max().item<float>() < 1e-5);

        // The energy of G inside P's span is the sum of the top-r squared singular values (Eckart–Young).
        var s = linalg.svdvals(g.to(ScalarType.Float64));
        var top = s.narrow(0, 0, Rank).square().sum().item<double>();
        Assert.Equal(top, Captured(g, p, side), top * 1e-4);
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void RandomizedSvd_CapturesNearlyAllOfTheFullSvdsEnergy(string layer, ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        var g = TinyLlamaTensors.Gradient(layer);
        using var generator = new Generator(1);

        var full = GradientProjection.Compute(g, Rank, side);
        var randomized = GradientProjection.Compute(g, Rank, side, SvdOptions.Randomized(), generator);

        // Halko et al.: with 8 extra directions and 2 power iterations the sketch is within a hair of the optimum on a
        // spectrum that decays like a gradient's; 1% of the captured energy is the quality bar for offering it.
        Assert.True(Captured(g, randomized, side) >= 0.99 * Captured(g, full, side));
        var gram = side == ProjectionSide.Left ? randomized.matmul(randomized.t()) : randomized.t().matmul(randomized);
        Assert.True((gram - eye(Rank)).abs().max().item<float>() < 1e-5);
    }

    [Fact]
    public void RankAboveTheSmallerSide_IsRejected()
    {
        using var g = randn(8, 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => GradientProjection.Compute(g, 5, ProjectionSide.Right));
    }

    /// <summary>‖G·Pᵀ‖²_F (left) or ‖Pᵀ·G‖²_F (right) in double.</summary>
    private static double Captured(Tensor g, Tensor p, ProjectionSide side)
    {
        var g64 = g.to(ScalarType.Float64);
        var p64 = p.to(ScalarType.Float64);
        return (side == ProjectionSide.Left ? g64.matmul(p64.t()) : p64.t().matmul(g64)).square().sum().item<double>();
    }
}
