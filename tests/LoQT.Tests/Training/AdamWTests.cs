using LoQT.Training;
using AdamW = LoQT.Training.AdamW;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace LoQT.Tests.Training;

/// <summary>fp32 AdamW against TorchSharp's own <c>torch.optim.AdamW</c> (an independent implementation of PyTorch's).</summary>
public sealed class AdamWTests
{
    [Fact]
    public void Steps_FollowTorchOptimAdamW()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(1);
        var start = randn([32, 48], generator: generator);
        var gradients = Enumerable.Range(0, 10).Select(_ => randn([32, 48], generator: generator)).ToArray();
        var ours = new Parameter(start.clone());
        var theirs = new Parameter(start.clone());
        var options = new AdamWOptions { LearningRate = 3e-3, Beta1 = 0.8, Beta2 = 0.95, Epsilon = 1e-6, WeightDecay = 0.1 };
        using var adamw = new AdamW([new TrainableParameter("p", ours)], options);
        var reference = optim.AdamW([theirs], lr: 3e-3, beta1: 0.8, beta2: 0.95, eps: 1e-6, weight_decay: 0.1);

        foreach (var g in gradients)
        {
            ours.grad = g.clone();
            adamw.Step();
            theirs.grad = g.clone();
            reference.step();
        }

        // The same fp32 operations in the same order; allow one ulp of drift per step at |p| ≈ 3 (ulp 2.4e-7).
        Assert.True((ours - theirs).abs().max().item<float>() < 3e-6);
        Assert.True((ours - start).abs().max().item<float>() > 1e-2);
        Assert.Equal(10, adamw.ParameterStepCount(ours));
    }

    [Fact]
    public void ParametersWithoutWeightDecay_AreNotDecayed()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(ones(8));
        using var adamw = new AdamW([new TrainableParameter("norm.weight", p, ApplyWeightDecay: false)], new AdamWOptions { LearningRate = 0.1, WeightDecay = 0.5 });

        p.grad = zeros(8);
        adamw.Step();

        Assert.Equal(1f, p.min().item<float>());
    }

    [Fact]
    public void Step_WithoutGradient_LeavesTheParameterAlone()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(ones(8));
        using var adamw = new AdamW([new TrainableParameter("p", p)]);

        adamw.Step();

        Assert.Equal(0, adamw.ParameterStepCount(p));
        Assert.Equal(1, adamw.StepCount);
    }
}
