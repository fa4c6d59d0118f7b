using LoQT.Loqt;
using LoQT.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>The timing sink of LoQT layers and the optimizer: stages are recorded when a sink is given, and only then.</summary>
public sealed class TimingSinkTests
{
    private static readonly LoqtOptions Options = new() { Rank = 4, ErrorCompensationIterations = 2 };

    [Fact]
    public void ReinitializationStep_RecordsDequantizationFullGradientSvdAndErrorCompensation()
    {
        var factory = new LoqtLinearFactory(LoqtMethod.Loqt, Options);
        using var layer = Layer(factory);
        var timings = new StageTimings();
        factory.TimingSink = timings;

        factory.ArmReinitialization();
        ForwardBackward(layer);

        foreach (var stage in new[] { TimedStage.Dequantize, TimedStage.FullGradient, TimedStage.Svd, TimedStage.ErrorCompensation })
        {
            Assert.True(timings.Count(stage) > 0, stage.ToString());
            Assert.True(timings.Seconds(stage) > 0, stage.ToString());
        }
    }

    [Fact]
    public void OrdinaryStep_DequantizesWAndPInForwardAndBackward()
    {
        var factory = new LoqtLinearFactory(LoqtMethod.Loqt, Options);
        using var layer = Layer(factory);
        factory.ArmReinitialization();
        ForwardBackward(layer); // P becomes NF4
        var timings = new StageTimings();
        factory.TimingSink = timings;

        ForwardBackward(layer);

        // W and P in forward; W for the input gradient and P again (it is not saved) in backward.
        Assert.Equal(4, timings.Count(TimedStage.Dequantize));
        Assert.Equal(0, timings.Count(TimedStage.Svd));
    }

    [Fact]
    public void WithoutASink_NothingIsRecorded()
    {
        var factory = new LoqtLinearFactory(LoqtMethod.Loqt, Options);
        using var layer = Layer(factory);
        var timings = new StageTimings();
        factory.TimingSink = timings;
        factory.TimingSink = null;

        factory.ArmReinitialization();
        ForwardBackward(layer);

        Assert.All(Enum.GetValues<TimedStage>(), stage => Assert.Equal(0, timings.Count(stage)));
    }

    [Fact]
    public void OptimizerUpdates_AreRecordedOnlyWithASink()
    {
        using var parameter = new TorchSharp.Modules.Parameter(ones(8, 8));
        using var optimizer = new AdamW([new TrainableParameter("p", parameter, ApplyWeightDecay: false)], new AdamWOptions());
        var timings = new StageTimings();

        parameter.grad = ones(8, 8);
        optimizer.Step();
        Assert.Equal(0, timings.Count(TimedStage.Optimizer));

        optimizer.TimingSink = timings;
        parameter.grad = ones(8, 8);
        optimizer.Step();
        Assert.Equal(1, timings.Count(TimedStage.Optimizer));
    }

    [Fact]
    public void Snapshot_NamesEveryStage()
    {
        var timings = new StageTimings();
        timings.Record(TimedStage.Svd, System.Diagnostics.Stopwatch.Frequency / 2);

        var snapshot = timings.Snapshot();

        Assert.Equal(["forward", "backward", "dequantize", "full_gradient", "svd", "error_compensation", "optimizer"], snapshot.Keys);
        Assert.Equal(0.5, snapshot["svd"], 9);
    }

    private static nn.Module<Tensor, Tensor> Layer(LoqtLinearFactory factory)
    {
        using var generator = new Generator(7);
        using var weight = randn([24, 16], generator: generator);
        return factory.Create("model.layers.0.mlp.up_proj", weight, null);
    }

    private static void ForwardBackward(nn.Module<Tensor, Tensor> layer)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(11);
        var x = randn([3, 16], generator: generator).requires_grad_();
        layer.call(x).square().sum().backward();
    }
}
