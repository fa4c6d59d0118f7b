using LoQT.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Tests.Training;

/// <summary>A step that applies no update (a re-initialization step) drops per-layer gradients instead of buffering them.</summary>
public sealed class PerLayerDiscardTests
{
    [Fact]
    public void DiscardedStep_TakesTheGradientAndLeavesParameterAndStateAlone()
    {
        using var parameter = new Parameter(ones(64, 64));
        using var optimizer = new AdamW8Bit([new TrainableParameter("p", parameter, ApplyWeightDecay: false)], new AdamWOptions { PerLayerUpdates = true });

        optimizer.BeginMicroBatch(lastOfStep: true, discard: true);
        using var gradient = ones(64, 64);
        Assert.True(optimizer.TryConsumeGradient(parameter, gradient));
        optimizer.Step();

        Assert.True(parameter.detach().eq(1).all().item<bool>());
        Assert.Equal(0, optimizer.StateBytes);
        Assert.Equal(0, optimizer.ParameterStepCount(parameter));
    }

    [Fact]
    public void NextStep_UpdatesAgain()
    {
        using var parameter = new Parameter(ones(64, 64));
        using var optimizer = new AdamW8Bit([new TrainableParameter("p", parameter, ApplyWeightDecay: false)], new AdamWOptions { PerLayerUpdates = true });
        optimizer.BeginMicroBatch(lastOfStep: true, discard: true);
        optimizer.Step();

        using var gradient = ones(64, 64);
        Assert.True(optimizer.TryConsumeGradient(parameter, gradient));

        Assert.Equal(1, optimizer.ParameterStepCount(parameter));
        Assert.True(parameter.detach().lt(1).all().item<bool>());
    }
}
