using System.Text.Json.Nodes;
using LoQT.Export;
using LoQT.Loqt;
using static TorchSharp.torch;

namespace LoQT.Tests.Export;

/// <summary><c>--format bf16|fp16|fp32</c>: the merged weights, dense, with no quantization_config.</summary>
[Collection(ExportCollection.Name)]
public sealed class FullPrecisionExportTests(ExportFixture fixture)
{
    [Theory]
    [InlineData(LoqtMethod.Loqt)]
    [InlineData(LoqtMethod.Lora)]
    [InlineData(LoqtMethod.LoqtNoQuantization)]
    [InlineData(LoqtMethod.Full)]
    public async Task Bf16Export_IsTheMergedWeightsCastToBf16_Exactly(LoqtMethod method)
    {
        var checkpoint = await fixture.CheckpointOf(method);
        var result = await ModelExporter.ExportAsync(new ExportOptions
        {
            Checkpoint = checkpoint, Output = fixture.NewPath("bf16-" + method.ToName()), Format = ExportFormat.BFloat16,
        });

        var reader = new IndependentBnbReader(result.OutputDirectory);
        var merged = ExportTestSupport.MergedWeights(checkpoint);
        var others = ExportTestSupport.OtherParameters(checkpoint);
        try
        {
            Assert.Equal(merged.Count + others.Count, reader.Names.Count);
            foreach (var (name, value) in merged.Concat(others))
            {
                Assert.Equal("BF16", reader[name].DType);
                Assert.Equal(value.shape, reader[name].Shape);
                using var expected = value.to(ScalarType.BFloat16);
                Assert.True(expected.bytes.SequenceEqual(reader[name].Data), $"{name} is not the merged weight cast to bf16");
            }
        }
        finally
        {
            ExportTestSupport.DisposeAll(merged);
            ExportTestSupport.DisposeAll(others);
        }
    }

    [Fact]
    public async Task Fp32Export_EvaluatesToTheCheckpointsPerplexity()
    {
        var result = await ModelExporter.ExportAsync(new ExportOptions
        {
            Checkpoint = fixture.Checkpoint, Output = fixture.NewPath("fp32-eval"), Format = ExportFormat.Float32,
        });
        var args = new[] { "--dataset", fixture.EvalFile, "--seq-len", "32", "--batch-size", "4", "--json" };
        var before = await ExportTestSupport.RunAsync(["eval", "--model", fixture.Checkpoint, .. args]);
        var after = await ExportTestSupport.RunAsync(["eval", "--model", result.OutputDirectory, .. args]);

        // The merged fp32 weights are the checkpoint's function: equal up to float summation order (x·Wᵀ + x·Pᵀ·Bᵀ in the
        // LoQT layer against x·(W + B·P)ᵀ here), far below any rounding of the weights.
        var expected = Perplexity(before.Output);
        Assert.Equal(expected, Perplexity(after.Output), expected * 1e-6);
    }

    [Fact]
    public async Task FullPrecisionConfig_HasNoQuantizationConfig_AndNamesTheDType()
    {
        var result = await ModelExporter.ExportAsync(new ExportOptions
        {
            Checkpoint = fixture.Checkpoint, Output = fixture.NewPath("fp16-config"), Format = ExportFormat.Float16,
        });

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(result.OutputDirectory, "config.json")))!.AsObject();
        Assert.False(config.ContainsKey("quantization_config"));
        Assert.Equal("float16", (string?)config["torch_dtype"]);
        Assert.All(new IndependentBnbReader(result.OutputDirectory).Names, n => Assert.DoesNotContain("quant_state", n));
        Assert.Equal(0, result.QuantizedWeights);
        Assert.Equal(14, result.MergedLayers);
    }

    private static double Perplexity(string stdout) =>
        JsonNode.Parse(ExportTestSupport.LastLine(stdout))!["perplexity"]!.GetValue<double>();
}
