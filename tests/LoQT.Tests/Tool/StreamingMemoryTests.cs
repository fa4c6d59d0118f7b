using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LoQT.Models.Llama;
using LoQT.SafeTensors;
using LoQT.Tests.SafeTensors;
using LoQT.Tests.Support;
using LoQT.Tool.Benchmarks;
using LoQT.Tool.Commands;
using Xunit.Abstractions;

namespace LoQT.Tests.Tool;

/// <summary>
/// Peak memory of loading and quantizing, measured in a child process (the tool itself), since this test process's
/// own peak also holds every other test. Checkpoints are generated with <see cref="SyntheticCheckpoint"/>.
/// </summary>
public sealed partial class StreamingMemoryTests(ITestOutputHelper log) : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private readonly ScratchFolder scratch = new();

    public void Dispose() => scratch.Dispose();

    [Fact]
    public async Task Loading7BShapedShardedCheckpoint_StaysUnderNf4ModelSizePlusLargestTensorPlus1GiB()
    {
        // One decoder layer of Llama-2-7B's shapes (4096 / 11008, vocab 32000) as fp16 in 300 MB shards: 886 MiB on disk.
        var config = LlamaConfig.Parse(LlamaPresets.GetConfigJson("7b")) with { NumHiddenLayers = 1 };
        var directory = scratch.File("7b-1-layer");
        SyntheticCheckpoint.Write(directory, config, SafeTensorDType.F16, maxShardBytes: 300_000_000);

        var (exitCode, output, error) = await ToolProcess.RunAsync(Timeout, "bench", "load", "--checkpoint", directory, "--compute-dtype", "bf16", "--json");

        Assert.True(exitCode == 0, error);
        var report = JsonSerializer.Deserialize<LoadReport>(ToolRunner.LastLine(output), Json)!;
        log.WriteLine(Describe(report));
        var tensors = config.CheckpointTensors();
        // The model as loaded, from the shapes alone: NF4 projections (4 bits + an F32 absmax per 64), the rest in bf16.
        var nf4 = tensors.Where(t => t.IsDecoderProjection).Sum(t => (t.ElementCount / 2) + (t.ElementCount / 64 * 4));
        var dense = tensors.Where(t => !t.IsDecoderProjection).Sum(t => t.ElementCount * 2);
        var largest = tensors.Max(t => t.ElementCount) * 2;
        Assert.Equal(nf4 + dense, report.ModelBytes);
        Assert.Equal(largest, report.LargestTensorBytes);
        Assert.True(report.Shards >= 3, $"{report.Shards} shards");
        Assert.True(report.PeakRssBytes <= nf4 + dense + largest + (1L << 30), Describe(report));
        // Tighter, so that a few layers can tell: above the start-up RSS, the load adds the model and at most two of the
        // largest tensor (one being converted, and allocator slack). Holding the checkpoint (886 MiB) would add four.
        Assert.True(report.PeakRssBytes - report.BaselineRssBytes <= report.ModelBytes + (2 * largest), Describe(report));
    }

    [Fact]
    public async Task Quantize_PeakMemoryDoesNotGrowWithTheNumberOfTensors()
    {
        // The same 8 MiB fp16 tensors, 2 layers vs 8 layers (64 MiB vs 256 MiB of projections): streaming keeps the
        // peak about the same; holding the input would add the 192 MiB difference. Eight tensors of slack: the garbage
        // collector frees the serialized NF4 byte arrays in batches, not one by one (about 26 MiB measured).
        var small = await QuantizePeakAsync(layers: 2);
        var large = await QuantizePeakAsync(layers: 8);

        const long largestTensor = 1024L * 4096 * 2;
        log.WriteLine($"quantize peak RSS: {small / 1048576.0:0.0} MiB for 2 layers, {large / 1048576.0:0.0} MiB for 8");
        Assert.True(large - small <= 8 * largestTensor, $"peak RSS {small / 1048576.0:0.0} MiB for 2 layers, {large / 1048576.0:0.0} MiB for 8");
    }

    [Fact]
    public async Task BenchLoad_GeneratesLoadsInAChildProcessAndDeletesTheCheckpoint()
    {
        var work = scratch.File("work");
        Directory.CreateDirectory(work);

        var (exitCode, output, error) = await ToolRunner.RunAsync("bench", "load", "--shape", "9m", "--layers", "1", "--work-dir", work, "--json");

        Assert.True(exitCode == 0, error);
        var report = JsonSerializer.Deserialize<LoadReport>(ToolRunner.LastLine(output), Json)!;
        Assert.Equal(1, report.Layers);
        Assert.True(report.WithinBound);
        Assert.Contains("generated ", error, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(work));
    }

    [Theory]
    [InlineData("--layers", "0")]
    [InlineData("--max-shard-size", "lots")]
    [InlineData("--dtype", "int8")]
    public async Task BenchLoad_InvalidOptions_AreUsageErrors(string option, string value)
    {
        var (exitCode, _, error) = await ToolRunner.RunAsync("bench", "load", option, value);

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
    }

    private async Task<long> QuantizePeakAsync(int layers)
    {
        var config = LlamaConfig.Parse("""{"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 8, "vocab_size": 1024}""")
            with { NumHiddenLayers = layers };
        var input = scratch.File($"dense-{layers}");
        SyntheticCheckpoint.Write(input, config, SafeTensorDType.F16, maxShardBytes: 100_000_000);

        var (exitCode, output, error) = await ToolProcess.RunAsync(Timeout, "quantize", "--input", input, "--output", scratch.File($"nf4-{layers}"));

        Assert.True(exitCode == 0, error);
        var match = PeakLine().Match(output);
        Assert.True(match.Success, output);
        return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static string Describe(LoadReport r) =>
        $"peak {r.PeakRssBytes / 1048576.0:0.0} MiB, start-up {r.BaselineRssBytes / 1048576.0:0.0} MiB, model {r.ModelBytes / 1048576.0:0.0} MiB, largest {r.LargestTensorBytes / 1048576.0:0.0} MiB, bound {r.BoundBytes / 1048576.0:0.0} MiB";

    [GeneratedRegex(@"peak RSS .* \((\d+) bytes\)")]
    private static partial Regex PeakLine();
}
