using LoQT.Models.Llama;
using LoQT.Quantization;
using LoQT.Tests.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Models;

/// <summary>
/// NF4 layers against an oracle: the same fixture checkpoint with every targeted weight replaced by deq(NF4(W)) in a plain
/// dense layer. NF4 itself is checked byte for byte against bitsandbytes in the quantization tests; these tests check
/// that the model puts the quantized weights where they belong and computes with them, forward and backward.
/// </summary>
public sealed class LlamaNf4OracleTests
{
    public static TheoryData<string, bool> FixturesAndDoubleQuant
    {
        get
        {
            var data = new TheoryData<string, bool>();
            foreach (var fixture in new[] { "tiny-llama", "tiny-llama3-gqa", "tiny-llama-sharded" })
            {
                data.Add(fixture, false);
                data.Add(fixture, true);
            }

            return data;
        }
    }

    public static TheoryData<string> Fixtures => new() { "tiny-llama", "tiny-llama3-gqa", "tiny-llama-sharded" };

    [Theory]
    [MemberData(nameof(FixturesAndDoubleQuant))]
    public void Nf4Forward_LogitsMatchTheDenseModelOfTheDequantizedWeights(string fixture, bool doubleQuant)
    {
        using var golden = new GoldenFixture(fixture);
        using var nf4 = LlamaForCausalLM.Load(golden.Directory, LlamaLoadOptions.Nf4(doubleQuant: doubleQuant));
        using var oracle = LlamaForCausalLM.Load(golden.Directory, new LlamaLoadOptions { LinearFactory = new DequantizedDenseFactory(doubleQuant) });
        using var _ = no_grad();

        using var actual = nf4.Forward(golden.InputIds);
        using var expected = oracle.Forward(golden.InputIds);

        Assert.All(nf4.LinearLayers.Where(l => l.Key != "lm_head"), l => Assert.IsType<Nf4Linear>(l.Value));
        // Both run F.linear on the same F32 weight values: only kernel scheduling could differ, far below 1e-5.
        Assert.InRange(GoldenFixture.RelativeError(actual.Logits, expected.Logits), 0, 1e-5);
        // And the weights really are 4-bit: the logits move away from the full-precision ones, but stay close.
        Assert.InRange(GoldenFixture.RelativeError(actual.Logits, golden.Logits), 1e-3, 0.5);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Nf4Backward_GradientsOfTheUnquantizedParametersMatchTheOracle(string fixture)
    {
        using var golden = new GoldenFixture(fixture);
        using var nf4 = LlamaForCausalLM.Load(golden.Directory, LlamaLoadOptions.Nf4() with { TrainUntargeted = true });
        using var oracle = LlamaForCausalLM.Load(
            golden.Directory, new LlamaLoadOptions { LinearFactory = new DequantizedDenseFactory(false), TrainUntargeted = true });

        foreach (var model in new[] { nf4, oracle })
        {
            using var output = model.Forward(golden.InputIds, labels: golden.InputIds);
            output.Loss!.backward();
        }

        // The embedding's gradient flows back through every NF4 layer's input gradient (deq(W) recomputed in backward).
        var expected = oracle.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter);
        var actual = nf4.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("model.embed_tokens.weight", actual.Keys);
        foreach (var (name, parameter) in actual)
        {
            // Same F32 operations in another order (autograd Function vs built-in linear backward): 1e-5 is ample.
            var error = GoldenFixture.RelativeError(parameter.grad!, expected[name].grad!);
            Assert.True(error <= 1e-5, $"{fixture}: gradient of {name} off by {error:E2}");
        }
    }

    [Theory]
    [MemberData(nameof(FixturesAndDoubleQuant))]
    public void QuantizedCheckpoint_LoadsToTheSameLogitsAsQuantizingWhileLoading(string fixture, bool doubleQuant)
    {
        using var golden = new GoldenFixture(fixture);
        using var scratch = new ScratchFolder();
        var quantizedDir = scratch.File("nf4");
        CheckpointQuantizer.Quantize(golden.Directory, quantizedDir, new CheckpointQuantizationOptions { DoubleQuant = doubleQuant });
        using var fromFile = LlamaForCausalLM.Load(quantizedDir, LlamaLoadOptions.Nf4());
        using var onTheFly = LlamaForCausalLM.Load(golden.Directory, LlamaLoadOptions.Nf4(doubleQuant: doubleQuant));
        using var _ = no_grad();

        using var actual = fromFile.Forward(golden.InputIds);
        using var expected = onTheFly.Forward(golden.InputIds);

        // The bitsandbytes-format file holds exactly the NF4 bytes quantizing gives: identical results.
        Assert.Equal(0, GoldenFixture.RelativeError(actual.Logits, expected.Logits));
    }

    /// <summary>Plain dense layers whose weight is deq(NF4(W)): what an NF4 layer must compute, in ordinary torch ops.</summary>
    private sealed class DequantizedDenseFactory(bool doubleQuant) : ILinearFactory
    {
        private readonly DenseLinearFactory dense = new();

        public nn.Module<Tensor, Tensor> Create(LinearLayerSpec spec, Tensor weight, Tensor? bias)
        {
            using var quantized = Nf4Tensor.Quantize(weight, Nf4BlockSizes.Default, doubleQuant);
            using var dequantized = quantized.Dequantize(ScalarType.Float32);
            return dense.Create(spec, dequantized, bias);
        }

        public nn.Module<Tensor, Tensor> CreateQuantized(LinearLayerSpec spec, Nf4Tensor weight, Tensor? bias) =>
            dense.CreateQuantized(spec, weight, bias);
    }
}
