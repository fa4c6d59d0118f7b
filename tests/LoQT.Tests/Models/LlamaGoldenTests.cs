using LoQT.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Models;

/// <summary>F32 forward, loss and gradients against transformers' own outputs for the three fixture checkpoints.</summary>
public sealed class LlamaGoldenTests
{
    public static TheoryData<string> Fixtures => new() { "tiny-llama", "tiny-llama3-gqa", "tiny-llama-sharded" };

    private static readonly LlamaLoadOptions TrainableF32 = new()
    {
        LinearFactory = new DenseLinearFactory(trainable: true),
        TrainUntargeted = true,
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Forward_F32LogitsMatchTransformers(string fixture)
    {
        using var golden = new GoldenFixture(fixture);
        using var model = LlamaForCausalLM.Load(golden.Directory);
        using var _ = no_grad();

        using var output = model.Forward(golden.InputIds);

        Assert.Equal(golden.Logits.shape, output.Logits.shape);
        // Same math in F32 with a different summation order than PyTorch's kernels: well inside the README's 1e-4.
        Assert.InRange(GoldenFixture.RelativeError(output.Logits, golden.Logits), 0, 1e-4);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Loss_WithLabelsEqualToInputs_MatchesTransformers(string fixture)
    {
        using var golden = new GoldenFixture(fixture);
        using var model = LlamaForCausalLM.Load(golden.Directory);
        using var _ = no_grad();

        using var output = model.Forward(golden.InputIds, labels: golden.InputIds);

        // The tolerance for the loss: F32 rounding of a mean over 46 tokens.
        Assert.Equal(golden.Loss, output.Loss!.item<float>(), 1e-5f);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Backward_GradientsOfTheLossMatchTransformers(string fixture)
    {
        using var golden = new GoldenFixture(fixture);
        using var model = LlamaForCausalLM.Load(golden.Directory, TrainableF32);
        using var output = model.Forward(golden.InputIds, labels: golden.InputIds);

        output.Loss!.backward();

        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.NotEmpty(golden.GradientNames);
        foreach (var name in golden.GradientNames)
        {
            using var expected = golden.Gradient(name);
            var actual = parameters[name].grad;
            Assert.NotNull(actual);
            // The tolerance for gradients: backward sums more terms than forward, in a different order.
            Assert.True(GoldenFixture.RelativeError(actual, expected) <= 1e-3, $"{fixture}: gradient of {name} off by {GoldenFixture.RelativeError(actual, expected):E2}");
        }
    }
}
