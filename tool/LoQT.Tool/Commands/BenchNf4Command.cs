using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using LoQT.IO;
using LoQT.Quantization;
using LoQT.Tool.Rendering;
using TorchSharp;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt bench nf4</c>: NF4 quantize / dequantize throughput of the CPU kernels and of the torch-ops path.</summary>
internal static class BenchNf4Command
{
    private const int TorchTimedRuns = 2;

    public static Command Create()
    {
        var rows = new Option<int>("--rows") { Description = "Rows of the fp32 test matrix.", DefaultValueFactory = _ => 4096 };
        var cols = new Option<int>("--cols") { Description = "Columns of the fp32 test matrix.", DefaultValueFactory = _ => 11008 };
        var blockSize = new Option<int>("--blocksize")
        {
            Description = "NF4 block size (a power of two from 32 to 4096).",
            DefaultValueFactory = _ => Nf4BlockSizes.Default,
        };
        var iterations = new Option<int>("--iterations")
        {
            Description = $"Timed runs of each CPU-kernel operation after one warm-up; the median is reported. The torch-ops path runs at most {TorchTimedRuns}.",
            DefaultValueFactory = _ => 5,
        };
        var noTorch = new Option<bool>("--no-torch") { Description = "Skip the (slow) torch-ops path." };
        var json = new Option<bool>("--json") { Description = "Print the results as one JSON object." };
        var output = new Option<string?>("--output") { Description = "Also write the results to this folder as nf4.json and a chart of the throughputs, nf4.png.", HelpName = "DIR" };

        var command = new Command(
            "nf4",
            "NF4 quantize and dequantize throughput in GB/s of fp32 data (4 bytes per element): the vectorized multi-threaded " +
            "CPU kernels (Nf4Cpu) and, for comparison, the same operations written with torch ops.")
        {
            rows, cols, blockSize, iterations, noTorch, json, output,
        };
        command.SetAction(parse =>
        {
            var error = parse.InvocationConfiguration.Error;
            var r = parse.GetValue(rows);
            var c = parse.GetValue(cols);
            var b = parse.GetValue(blockSize);
            var n = parse.GetValue(iterations);
            if (r < 1 || c < 1 || (long)r * c > int.MaxValue / 4)
            {
                error.WriteLine("error: --rows and --cols must be positive and rows x cols at most 536870911.");
                return LoqtCli.UsageError;
            }

            if (!Nf4BlockSizes.IsValid(b))
            {
                error.WriteLine($"error: --blocksize must be a power of two from {Nf4BlockSizes.Min} to {Nf4BlockSizes.Max}; got {b}.");
                return LoqtCli.UsageError;
            }

            if (n < 1)
            {
                error.WriteLine("error: --iterations must be at least 1.");
                return LoqtCli.UsageError;
            }

            var report = Run(r, c, b, n, !parse.GetValue(noTorch));
            Print(report, parse.GetValue(json), parse.InvocationConfiguration.Output);
            if (parse.GetValue(output) is { } folder)
            {
                try
                {
                    Save(report, folder);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    error.WriteLine($"error: cannot write to {folder}: {e.Message}");
                    return 1;
                }
            }

            return report.Identical ? 0 : 1;
        });
        return command;
    }

    private static Report Run(int rows, int cols, int blockSize, int iterations, bool withTorch)
    {
        var count = rows * cols;
        var results = new List<Measurement>();
        using var generator = new torch.Generator(1234);
        using var x = torch.randn([rows, cols], generator: generator);
        var packed = new byte[Nf4BlockSizes.PackedLength(count)];
        var absmax = new float[Nf4BlockSizes.BlockCount(count, blockSize)];
        var output = GC.AllocateUninitializedArray<float>(count);
        var outputBf16 = GC.AllocateUninitializedArray<ushort>(count);

        results.Add(Time("cpu", "quantize", count, iterations, () => Nf4Cpu.Quantize(MemoryMarshal.Cast<byte, float>(x.bytes), packed, absmax, blockSize)));
        results.Add(Time("cpu", "dequantize", count, iterations, () => Nf4Cpu.Dequantize(packed, absmax, output, blockSize)));
        results.Add(Time("cpu", "dequantize-bf16", count, iterations, () => Nf4Cpu.DequantizeBFloat16(packed, absmax, outputBf16, blockSize)));

        var identical = true;
        if (withTorch)
        {
            Nf4Tensor? quantized = null;
            results.Add(Time("torch", "quantize", count, Math.Min(iterations, TorchTimedRuns), () =>
            {
                quantized?.Dispose();
                quantized = Nf4Tensor.Quantize(x, blockSize, doubleQuant: false, Nf4Kernel.TorchOps);
            }));
            using (quantized)
            {
                results.Add(Time("torch", "dequantize", count, Math.Min(iterations, TorchTimedRuns), () =>
                {
                    using var values = quantized!.Dequantize(torch.ScalarType.Float32, Nf4Kernel.TorchOps);
                }));

                // The two paths must agree bit for bit; a benchmark of wrong results would be worthless.
                using var values = quantized!.Dequantize(torch.ScalarType.Float32, Nf4Kernel.TorchOps);
                identical = quantized.Packed.bytes.SequenceEqual(packed)
                    && MemoryMarshal.Cast<byte, float>(quantized.Absmax.bytes).SequenceEqual(absmax)
                    && MemoryMarshal.Cast<byte, float>(values.bytes).SequenceEqual(output);
            }
        }

        return new Report(rows, cols, blockSize, Environment.ProcessorCount, results, withTorch ? identical : true);
    }

    private static Measurement Time(string path, string operation, long count, int iterations, Action action)
    {
        action(); // warm-up: JIT, page faults of fresh buffers, thread pool
        var milliseconds = new double[iterations];
        for (var i = 0; i < iterations; i++)
        {
            var watch = Stopwatch.StartNew();
            action();
            milliseconds[i] = watch.Elapsed.TotalMilliseconds;
        }

        Array.Sort(milliseconds);
        var median = milliseconds[iterations / 2];
        return new Measurement(path, operation, count * sizeof(float) / (median / 1000) / 1e9, median, milliseconds[0]);
    }

    private static void Print(Report report, bool json, TextWriter output)
    {
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(report, JsonOptions));
            return;
        }

        var megabytes = (double)report.Rows * report.Cols * sizeof(float) / 1e6;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"NF4 {report.Rows} x {report.Cols} fp32 ({megabytes:F1} MB), block size {report.BlockSize}, {report.Threads} threads"));
        foreach (var m in report.Results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{m.Path,-6} {m.Operation,-16} {m.GigabytesPerSecond,8:F2} GB/s   median {m.MedianMilliseconds,9:F1} ms   best {m.BestMilliseconds,9:F1} ms"));
        }

        if (report.Results.Any(m => m.Path == "torch"))
        {
            output.WriteLine(report.Identical ? "cpu and torch paths: identical results" : "cpu and torch paths: RESULTS DIFFER");
        }
    }

    /// <summary>Writes nf4.json (the --json object) and nf4.png (throughput per path and operation) into <paramref name="folder"/>.</summary>
    private static void Save(Report report, string folder)
    {
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, "nf4.json"), JsonSerializer.Serialize(report, JsonOptions) + "\n");
        var megabytes = (double)report.Rows * report.Cols * sizeof(float) / 1e6;
        PngCharts.SaveStackedBars(
            Path.Combine(folder, "nf4.png"),
            string.Create(CultureInfo.InvariantCulture, $"NF4 throughput: {report.Rows} x {report.Cols} fp32 ({megabytes:F0} MB), block {report.BlockSize}, {report.Threads} threads"),
            "GB/s of fp32 data",
            report.Results.Select(m => $"{m.Path} {m.Operation}").ToList(),
            [new ChartStack("GB/s", report.Results.Select(m => m.GigabytesPerSecond).ToList())]);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private sealed record Measurement(string Path, string Operation, double GigabytesPerSecond, double MedianMilliseconds, double BestMilliseconds);

    private sealed record Report(int Rows, int Cols, int BlockSize, int Threads, IReadOnlyList<Measurement> Results, bool Identical);
}
