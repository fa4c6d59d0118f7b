using LoQT.Models.Llama;
using static TorchSharp.torch;

namespace LoQT.Tests.Models;

/// <summary>The fused next-token loss (what training and evaluation use) against transformers' loss and gradients.</summary>
public sealed class NextTokenLossGoldenTests
{
    private static readonly LlamaLoadOptions TrainableF32 = new()
    {
        LinearFactory = new DenseLinearFactory(trainable: true),
        TrainUntargeted = true,
    };

    [Theory]
    [MemberData(nameof(LlamaGoldenTests.Fixtures), MemberType = typeof(LlamaGoldenTests))]
    public void Loss_MatchesTransformers(string fixture)
    {
        using var golden = new GoldenFixture(fixture);
        using var model = LlamaForCausalLM.Load(golden.Directory);
        using var _ = no_grad();

        using var loss = model.NextTokenLoss(golden.InputIds, null, golden.InputIds);

        // As for Forward's loss: F32 rounding of a mean over 46 tokens.
        Assert.Equal(golden.Loss, loss.item<float>(), 1e-5f);
    }

    [Theory]
    [MemberData(nameof(LlamaGoldenTests.Fixtures), MemberType = typeof(LlamaGoldenTests))]
    public void SumReduction_IsTheMeanTimesTheScoredTokens(string fixture)
    {
        using var golden = new GoldenFixture(fixture);
        using var model = LlamaForCausalLM.Load(golden.Directory);
        using var _ = no_grad();

        using var sum = model.NextTokenLoss(golden.InputIds, null, golden.InputIds, nn.Reduction.Sum);

        Assert.Equal(golden.Loss * 46, sum.item<float>(), 46e-5f);
    }

    [Theory]
    [MemberData(nameof(LlamaGoldenTests.Fixtures), MemberType = typeof(LlamaGoldenTests))]
    public void Gradients_MatchTransformers(string fixture)
    {
        // tiny-llama3-gqa ties lm_head to the embedding: its gradient sums the head's (fused) and the embedding's parts.
        using var golden = new GoldenFixture(fixture);
        using var model = LlamaForCausalLM.Load(golden.Directory, TrainableF32);
        using var loss = model.NextTokenLoss(golden.InputIds, null, golden.InputIds);

        loss.backward();

        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var name in golden.GradientNames)
        {
            using var expected = golden.Gradient(name);
            var actual = parameters[name].grad;
            Assert.NotNull(actual);
            Assert.True(GoldenFixture.RelativeError(actual, expected) <= 1e-3, $"{fixture}: gradient of {name} off by {GoldenFixture.RelativeError(actual, expected):E2}");
        }

        // The head's own gradient (not in the fixture) against the unfused path's.
        var headName = parameters.ContainsKey("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight";
        var fused = parameters[headName].grad!.clone();
        using var reference = LlamaForCausalLM.Load(golden.Directory, TrainableF32);
        using (var output = reference.Forward(golden.InputIds, labels: golden.InputIds))
        {
            output.Loss!.backward();
        }

        var unfused = reference.named_parameters().Single(p => p.name == headName).parameter.grad!;
        Assert.True(GoldenFixture.RelativeError(fused, unfused) <= 1e-5, $"{fixture}: gradient of {headName} off by {GoldenFixture.RelativeError(fused, unfused):E2}");
    }
}
