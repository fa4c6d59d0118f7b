using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tests.Training;

/// <summary>Gradient clipping with PyTorch's <c>clip_grad_norm_</c> semantics, on hand-made gradients.</summary>
public sealed class GradientClippingTests
{
    [Fact]
    public void TotalNorm_IsTheNormOfAllGradientsTogether()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(5.0, GradientClipping.TotalNorm([tensor(new float[] { 3, 0 }), tensor(new float[] { 0, 4 })]), 1e-6);
    }

    [Fact]
    public void GradientsAboveTheThreshold_AreScaledTogetherToIt()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 3, 0 });
        var b = tensor(new float[] { 0, 4 });

        var before = GradientClipping.ClipInPlace([a, b], maxNorm: 1);

        // Scaled by max/(norm + 1e-6) = 1/5.000001, which keeps their direction and ratio.
        Assert.Equal(5.0, before, 1e-6);
        Assert.Equal(3 / 5.000001, a[0].item<float>(), 1e-6);
        Assert.Equal(4 / 5.000001, b[1].item<float>(), 1e-6);
        Assert.Equal(1.0, GradientClipping.TotalNorm([a, b]), 1e-5);
    }

    [Fact]
    public void GradientsBelowTheThreshold_AreLeftAlone()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 0.3f, 0.4f });

        GradientClipping.ClipInPlace([a], maxNorm: 1);

        Assert.Equal([0.3f, 0.4f], a.data<float>().ToArray());
    }

    [Fact]
    public void OrdinaryStep_ClipsTheGlobalNormAndReportsItBeforeClipping()
    {
        using var scope = NewDisposeScope();
        var p = new TorchSharp.Modules.Parameter(zeros(2));
        var q = new TorchSharp.Modules.Parameter(zeros(2));
        using var optimizer = new AdamW([new TrainableParameter("p", p), new TrainableParameter("q", q)], new AdamWOptions { MaxGradNorm = 1 });
        p.grad = tensor(new float[] { 3, 0 });
        q.grad = tensor(new float[] { 0, 4 });

        Assert.Equal(5.0, optimizer.Step()!.Value, 1e-6);
    }
}
