using System.Text.Json;
using LoQT.Models.Llama;
using LoQT.Quantization;
using LoQT.Tests.Models;
using LoQT.Tests.SafeTensors;
using LoQT.Tests.Support;
using static TorchSharp.torch;

namespace LoQT.Tests.Tool;

/// <summary><c>loqt eval</c> on the tiny-llama fixture, against transformers' golden loss.</summary>
public sealed class EvalCommandTests : IDisposable
{
    private readonly ScratchFolder scratch = new();

    private static string TinyLlama => TestPaths.Fixture("tiny-llama");

    public void Dispose() => scratch.Dispose();

    [Theory]
    [InlineData("--seq-len", "24")]
    [InlineData("--no-pack", "--batch-size", "2")]
    public async Task PreTokenizedGoldenIds_GiveThePerplexityTheGoldenLossImplies(params string[] dataOptions)
    {
        using var golden = new GoldenFixture("tiny-llama");
        var dataset = WriteIds("golden.jsonl", Rows(golden.InputIds));

        var (exitCode, output, error) = await ToolRunner.RunAsync(["eval", "--model", TinyLlama, "--dataset", dataset, "--json", .. dataOptions]);

        Assert.True(exitCode == 0, error);
        var result = JsonDocument.Parse(ToolRunner.LastLine(output)).RootElement;
        // Two rows of 24 tokens, each scoring positions 1..23, exactly the golden loss's 46 predictions.
        Assert.Equal(46, result.GetProperty("tokens").GetInt64());
        Assert.Equal(golden.Loss, result.GetProperty("loss").GetDouble(), 1e-5);
        var perplexity = result.GetProperty("perplexity").GetDouble();
        Assert.True(Math.Abs(perplexity - Math.Exp(golden.Loss)) <= 1e-5 * perplexity, $"perplexity {perplexity}, golden exp(loss) {Math.Exp(golden.Loss)}");
        Assert.Equal(["loss", "perplexity", "tokens"], result.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task NoPack_PaddedBatchesGiveTheLossOfOneSequenceAtATime()
    {
        using var golden = new GoldenFixture("tiny-llama");
        var rows = Rows(golden.InputIds);
        var dataset = WriteIds("ragged.jsonl", rows[0], rows[1][..13], rows[0][..7], rows[1][..20]);

        var batched = await LossAsync(["--no-pack", "--batch-size", "4"]);
        var single = await LossAsync(["--no-pack", "--batch-size", "1"]);

        // Padding takes no loss and is never attended, so batching changes only F32 rounding.
        Assert.Equal(single.Tokens, batched.Tokens);
        Assert.Equal(23 + 12 + 6 + 19, batched.Tokens);
        Assert.Equal(single.Loss, batched.Loss, 1e-6);

        async Task<(double Loss, long Tokens)> LossAsync(string[] options)
        {
            var (exitCode, output, error) = await ToolRunner.RunAsync(["eval", "--model", TinyLlama, "--dataset", dataset, "--json", .. options]);
            Assert.True(exitCode == 0, error);
            var json = JsonDocument.Parse(ToolRunner.LastLine(output)).RootElement;
            return (json.GetProperty("loss").GetDouble(), json.GetProperty("tokens").GetInt64());
        }
    }

    [Fact]
    public async Task Nf4Checkpoint_IsEvaluatedWithItsNf4Weights()
    {
        using var golden = new GoldenFixture("tiny-llama");
        var quantized = scratch.File("nf4");
        CheckpointQuantizer.Quantize(TinyLlama, quantized, new CheckpointQuantizationOptions());
        var dataset = WriteIds("golden.jsonl", Rows(golden.InputIds));
        double expected;
        using (var model = LlamaForCausalLM.Load(quantized))
        using (no_grad())
        using (var reference = model.Forward(golden.InputIds, labels: golden.InputIds))
        {
            expected = reference.Loss!.item<float>();
        }

        var fromFile = await ToolRunner.RunAsync("eval", "--model", quantized, "--dataset", dataset, "--seq-len", "24", "--json");
        var onLoad = await ToolRunner.RunAsync("eval", "--model", TinyLlama, "--dataset", dataset, "--seq-len", "24", "--quantize", "--json");

        Assert.True(fromFile.ExitCode == 0, fromFile.Error);
        Assert.True(onLoad.ExitCode == 0, onLoad.Error);
        Assert.Contains("NF4 linear weights", fromFile.Error, StringComparison.Ordinal);
        Assert.Equal(expected, Loss(fromFile.Output), 1e-5);
        Assert.Equal(expected, Loss(onLoad.Output), 1e-5);
        Assert.True(Math.Abs(expected - golden.Loss) > 1e-4, "the NF4 loss should differ from the full-precision one");
    }

    [Fact]
    public async Task TextDataset_IsTokenizedWithTheModelsTokenizer()
    {
        var dataset = scratch.File("text.txt");
        File.WriteAllText(dataset, "The cat sat on the mat.\nA second line of text.\n");

        var (exitCode, output, error) = await ToolRunner.RunAsync("eval", "--model", TinyLlama, "--dataset", dataset);

        Assert.True(exitCode == 0, error);
        Assert.Matches(@"^loss \d+\.\d{4}  perplexity \d+\.\d{3}  tokens \d+$", output.Trim());
        Assert.Contains("dataset: ", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--batch-size", "0")]
    [InlineData("--seq-len", "1")]
    [InlineData("--max-tokens", "0")]
    public async Task InvalidNumbers_AreUsageErrors(string option, string value)
    {
        var dataset = WriteIds("one.jsonl", [1, 2, 3]);

        var (exitCode, _, error) = await ToolRunner.RunAsync("eval", "--model", TinyLlama, "--dataset", dataset, option, value);

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MalformedDatasetLine_IsAnErrorWithFileAndLine()
    {
        var dataset = scratch.File("bad.jsonl");
        File.WriteAllText(dataset, "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, \"x\"]}\n");

        var (exitCode, output, error) = await ToolRunner.RunAsync("eval", "--model", TinyLlama, "--dataset", dataset);

        Assert.Equal((1, string.Empty), (exitCode, output));
        Assert.StartsWith($"error: {dataset}:2: ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingModel_IsAnErrorNamingIt()
    {
        var dataset = WriteIds("one.jsonl", [1, 2, 3]);
        var missing = scratch.File("no-model");
        Directory.CreateDirectory(missing);

        var (exitCode, _, error) = await ToolRunner.RunAsync("eval", "--model", missing, "--dataset", dataset);

        Assert.Equal(1, exitCode);
        Assert.Contains(missing, error, StringComparison.Ordinal);
    }

    internal static long[][] Rows(Tensor ids) =>
        Enumerable.Range(0, (int)ids.shape[0]).Select(r => ids[r].data<long>().ToArray()).ToArray();

    private static double Loss(string output) => JsonDocument.Parse(ToolRunner.LastLine(output)).RootElement.GetProperty("loss").GetDouble();

    private string WriteIds(string name, params long[][] rows)
    {
        var path = scratch.File(name);
        File.WriteAllLines(path, rows.Select(r => JsonSerializer.Serialize(new { input_ids = r })));
        return path;
    }
}
