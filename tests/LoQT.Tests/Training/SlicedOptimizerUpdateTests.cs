using LoQT.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Tests.Training;

/// <summary>
/// Parameters larger than <see cref="AdamWOptimizer.UpdateSliceElements"/> are updated slice by slice (to bound the
/// update's scratch memory): the result must be what updating the same elements as separate parameters gives.
/// </summary>
public sealed class SlicedOptimizerUpdateTests
{
    // One slice plus a tail of 32 8-bit blocks; both parts are large enough for 8-bit moments.
    private const long Head = AdamWOptimizer.UpdateSliceElements;
    private const long Tail = 8192;

    [Theory]
    [InlineData(false, ScalarType.Float32)]
    [InlineData(true, ScalarType.Float32)]
    [InlineData(true, ScalarType.BFloat16)]
    public void SlicedUpdate_EqualsUpdatingTheSlicesAsSeparateParameters(bool eightBit, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(17);
        var initial = randn([Head + Tail], generator: generator).to(dtype);
        var whole = new Parameter(initial.clone());
        var head = new Parameter(initial.narrow(0, 0, Head).clone());
        var tail = new Parameter(initial.narrow(0, Head, Tail).clone());
        var options = new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.1 };
        using var one = Optimizer(eightBit, options, ("whole", whole));
        using var two = Optimizer(eightBit, options, ("head", head), ("tail", tail));

        for (var step = 0; step < 3; step++)
        {
            var gradient = randn([Head + Tail], generator: generator).to(dtype);
            whole.grad = gradient.clone();
            head.grad = gradient.narrow(0, 0, Head).clone();
            tail.grad = gradient.narrow(0, Head, Tail).clone();
            one.Step();
            two.Step();
        }

        Assert.True(whole.detach().equal(cat([head.detach(), tail.detach()])).all().item<bool>());
    }

    private static AdamWOptimizer Optimizer(bool eightBit, AdamWOptions options, params (string Name, Parameter Parameter)[] parameters)
    {
        var specs = parameters.Select(p => new TrainableParameter(p.Name, p.Parameter, ApplyWeightDecay: true)).ToList();
        return eightBit ? new AdamW8Bit(specs, options) : new LoQT.Training.AdamW(specs, options);
    }
}
