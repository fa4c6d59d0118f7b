using LoQT.Loqt;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>
/// The paper's identity: with W and P not quantized, training B with Adam in the projected space moves
/// W_eff = W + α·B·P exactly as GaLore moves W with the same P (GaLore's scale = α).
/// </summary>
/// <remarks>
/// B's gradient is α·G·Pᵀ (left) or α·Pᵀ·G (right): Adam divides the scale α out of m/√v except inside ε, so
/// Adam(α·g; ε) = Adam(g; ε/α). GaLore therefore runs with ε/α; weight decay is off (LoQT decays B, GaLore decays W).
/// Both start from the same W on the same batches; LoQT takes P at its re-initialization step (no update) from the
/// gradient of batch 0 at W, which is the gradient GaLore takes its P from at its first update.
/// </remarks>
public sealed class GaLoreEquivalenceTests
{
    private const int Rank = 8;
    private const double Alpha = 0.5;
    private const double LearningRate = 1e-2;
    private const double Epsilon = 1e-8;
    private const int Steps = 8;

    public static TheoryData<string> Layers => [TinyLlamaTensors.UpProj, TinyLlamaTensors.DownProj];

    [Theory]
    [MemberData(nameof(Layers))]
    public void UnquantizedLoqt_FollowsGaLoresWeightTrajectory(string layerName)
    {
        using var scope = NewDisposeScope();
        var w0 = TinyLlamaTensors.Weight(layerName);
        var batches = Batches(w0.shape[1], w0.shape[0]);

        var loqtTrajectory = TrainLoqt(w0, batches);
        var galoreTrajectory = TrainGaLore(w0, batches);

        // fp32 noise: the two paths compute the same sums in different orders ((gᵀx)Pᵀ vs gᵀ(xPᵀ); W + α·B·P rebuilt
        // each step vs W updated in place), a few ulps of |W| ≈ 0.1 (ulp ≈ 7e-9) per step; Adam's normalization passes
        // relative errors of ~1e-6 through unchanged. 2e-6 after 8 steps is still 1000× below the distance W moves.
        for (var t = 0; t < Steps; t++)
        {
            var difference = (loqtTrajectory[t] - galoreTrajectory[t]).abs().max().item<float>();
            Assert.True(difference < 2e-6, $"step {t}: max |W_loqt − W_galore| = {difference}");
        }

        var moved = (galoreTrajectory[^1] - w0).abs().max().item<float>();
        Assert.True(moved > 2e-3, $"W moved only {moved}: the comparison would not mean anything");
    }

    [Fact]
    public void GaLoreWithScaleOne_DoesNotFollowLoqtWithAlphaOneHalf()
    {
        // The same comparison fails when the scales do not match: the test above can tell the paths apart.
        using var scope = NewDisposeScope();
        var w0 = TinyLlamaTensors.Weight(TinyLlamaTensors.UpProj);
        var batches = Batches(w0.shape[1], w0.shape[0]);

        var loqt = TrainLoqt(w0, batches);
        var galore = TrainGaLore(w0, batches, scale: 1.0);

        Assert.True((loqt[^1] - galore[^1]).abs().max().item<float>() > 1e-3);
    }

    private static List<Tensor> TrainLoqt(Tensor w0, IReadOnlyList<(Tensor X, Tensor Target)> batches)
    {
        var options = new LoqtOptions { Rank = Rank, Alpha = Alpha, QuantizeWeight = false, QuantizeProjection = false };
        var layer = new LoqtLinear("layer", w0, null, options);
        using var optimizer = new AdamW([new TrainableParameter("layer.adapter", layer.Adapter)], new AdamWOptions { LearningRate = LearningRate, Epsilon = Epsilon });
        layer.UpdateSink = optimizer;

        // The re-initialization step: P from the gradient of batch 0 at W; no update.
        layer.ArmReinitialization();
        Loss(layer.call(batches[0].X), batches[0].Target).backward();
        Assert.Equal(1, layer.ReinitializationCount);
        optimizer.ZeroGrad();
        optimizer.Step();

        var trajectory = new List<Tensor>();
        foreach (var (x, target) in batches)
        {
            Loss(layer.call(x), target).backward();
            optimizer.Step();
            trajectory.Add(layer.MergedWeight());
        }

        return trajectory;
    }

    private static List<Tensor> TrainGaLore(Tensor w0, IReadOnlyList<(Tensor X, Tensor Target)> batches, double scale = Alpha)
    {
        var layer = new TrainableDenseLinear("layer", w0, null);
        var galore = new GaLoreSettings(Rank, MergeSchedule.Static(10_000), scale);
        using var optimizer = new AdamW(
            [new TrainableParameter("layer.weight", layer.Weight, ApplyWeightDecay: false, GaLore: galore)],
            new AdamWOptions { LearningRate = LearningRate, Epsilon = Epsilon / Alpha });

        var trajectory = new List<Tensor>();
        foreach (var (x, target) in batches)
        {
            Loss(layer.call(x), target).backward();
            optimizer.Step();
            trajectory.Add(layer.Weight.detach().clone());
        }

        return trajectory;
    }

    private static Tensor Loss(Tensor y, Tensor target) => (y - target).square().mean();

    private static List<(Tensor X, Tensor Target)> Batches(long inFeatures, long outFeatures)
    {
        using var generator = new Generator(42);
        return Enumerable.Range(0, Steps)
            .Select(_ => (randn([16, inFeatures], generator: generator), randn([16, outFeatures], generator: generator)))
            .ToList();
    }
}
