using System.Diagnostics;
using System.Text.Json.Nodes;
using LoQT.Models.Llama;
using LoQT.Training;
using Xunit.Abstractions;

namespace LoQT.Tests.Export;

/// <summary>Peak memory of <c>loqt export</c>, measured in a process of its own: about one layer in full precision, never the model.</summary>
[Collection(ExportCollection.Name)]
public sealed class ExportMemoryTests(ExportFixture fixture, ITestOutputHelper log)
{
    // 6 layers of hidden 1024 / intermediate 2816: 77 M linear parameters, 309 MB in fp32, 43 MB in NF4; the largest
    // layer is 11.5 MB in fp32.
    private static readonly LlamaConfig Shape = new()
    {
        HiddenSize = 1024, IntermediateSize = 2816, NumHiddenLayers = 6, NumAttentionHeads = 16, NumKeyValueHeads = 16,
        VocabSize = 512, MaxPositionEmbeddings = 64,
    };

    [Fact]
    public async Task PeakRss_IsAboutOneLayerInFullPrecision_NotTheModel()
    {
        var checkpoint = ExportTestSupport.CreateRandomCheckpoint(fixture.NewPath("big-checkpoint"), Shape);
        long linear = LlamaWeightLayout.Expected(Shape).Where(t => t.Role == LlamaTensorRole.LinearWeight && t.Name != "lm_head.weight").Sum(t => t.Shape[0] * t.Shape[1]);
        var fullPrecision = linear * 4;
        var nf4 = (linear / 2) + (linear / 64 * 4);
        var largestLayer = (long)Shape.HiddenSize * Shape.IntermediateSize * 4;

        // The same process exporting the tiny checkpoint is the baseline: runtime, libtorch and their allocators.
        var baseline = await PeakRssOfExportAsync(fixture.RunDirectory, fixture.NewPath("small-export"));
        var peak = await PeakRssOfExportAsync(checkpoint, fixture.NewPath("big-export"));
        var growth = peak - baseline;
        log.WriteLine($"peak RSS: tiny export {ProcessMemory.Format(baseline)}, {linear:N0}-parameter export {ProcessMemory.Format(peak)}, growth {ProcessMemory.Format(growth)} " +
            $"(model {ProcessMemory.Format(fullPrecision)} fp32, {ProcessMemory.Format(nf4)} NF4; largest layer {ProcessMemory.Format(largestLayer)} fp32)");

        // The bound: the NF4 model plus one layer in full precision, plus 64 MiB for what two runs of the runtime
        // differ by (GC heap sizing, allocator caches, thread pools). The exporter streams, so it holds less than the NF4
        // model: one layer's dequantized W and α·B·P product at a time. Measured growth, on a loaded 2-core machine:
        // 38-66 MiB. The full-precision model (294 MiB) does not fit under the bound.
        var bound = nf4 + largestLayer + (64L << 20);
        Assert.True(growth <= bound, $"an export of this checkpoint grew RSS by {ProcessMemory.Format(growth)}; the bound is {ProcessMemory.Format(bound)}");
        Assert.True(bound < fullPrecision / 2, "the model is too small for the bound to say anything");
    }

    private static async Task<long> PeakRssOfExportAsync(string checkpoint, string output)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : Environment.ProcessPath ?? "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "LoQT.Tool.dll"), "export", "--checkpoint", checkpoint, "--output", output, "--json" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, await stderr);
        return JsonNode.Parse(ExportTestSupport.LastLine(await stdout))!["peak_rss_bytes"]!.GetValue<long>();
    }
}
