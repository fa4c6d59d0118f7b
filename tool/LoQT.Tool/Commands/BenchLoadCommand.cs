using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LoQT.Models.Llama;
using LoQT.SafeTensors;
using LoQT.Tool.Benchmarks;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tool.Commands;

/// <summary>
/// <c>loqt bench load</c>: peak memory of loading a big sharded checkpoint into NF4 layers, against the bound
/// NF4 model size + largest tensor + 1 GiB. Generates a checkpoint of the asked shape (Llama-2-7B by default), loads it
/// in a fresh process (so the peak is the load's alone), reports, and deletes the checkpoint.
/// </summary>
internal static class BenchLoadCommand
{
    /// <summary>The slack the bound allows on top of the model and one tensor: runtime, libtorch, buffers.</summary>
    public const long SlackBytes = 1L << 30;

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create()
    {
        var shape = new Option<string>("--shape")
        {
            Description = "Shape of the generated checkpoint: a Llama preset (9m … 1b, 7b, 13b; 7b has Llama-2-7B's layer shapes and vocabulary) or a config.json.",
            DefaultValueFactory = _ => "7b",
        };
        var layers = new Option<int?>("--layers") { Description = "Decoder layers to generate (default: the shape's own, 32 for 7b)." };
        var dtype = new Option<string>("--dtype") { Description = "dtype of the generated safetensors: fp16, bf16 or fp32.", DefaultValueFactory = _ => "fp16" };
        dtype.AcceptOnlyFromAmong("fp16", "bf16", "fp32");
        var computeDType = new Option<string>("--compute-dtype")
        {
            Description = "dtype of the embeddings, norms and lm_head after loading (the projections become NF4): bf16 or fp32.",
            DefaultValueFactory = _ => "bf16",
        };
        computeDType.AcceptOnlyFromAmong("bf16", "fp32");
        var maxShardSize = new Option<string>("--max-shard-size") { Description = "Largest shard of the generated checkpoint (as save_pretrained: 5GB).", DefaultValueFactory = _ => "5GB" };
        var checkpoint = new Option<string?>("--checkpoint")
        {
            Description = "Load this existing checkpoint folder in this process instead of generating one (nothing is deleted); the peak then includes whatever this process did before.",
        };
        var workDir = new Option<string?>("--work-dir") { Description = "Where to generate the checkpoint (default: the system temp folder); it needs the checkpoint's size free." };
        var keep = new Option<bool>("--keep") { Description = "Keep the generated checkpoint (its path is printed)." };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };

        var command = new Command(
            "load",
            "Peak RSS of loading a sharded checkpoint into NF4 layers (tensor by tensor), against NF4 model size + largest tensor + 1 GiB. " +
            "By default generates a Llama-2-7B-shaped fp16 checkpoint (13.5 GB on disk for 32 layers), loads it in a child process, and deletes it.")
        {
            shape, layers, dtype, computeDType, maxShardSize, checkpoint, workDir, keep, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            try
            {
                var compute = parse.GetRequiredValue(computeDType) == "fp32" ? ScalarType.Float32 : ScalarType.BFloat16;
                LoadReport report;
                if (parse.GetValue(checkpoint) is { } existing)
                {
                    report = Measure(existing, compute, error, cancellationToken);
                }
                else
                {
                    if (!QuantizeCommand.TryParseSize(parse.GetRequiredValue(maxShardSize), out var shardBytes))
                    {
                        await error.WriteLineAsync($"error: --max-shard-size '{parse.GetValue(maxShardSize)}' is not a size such as 5GB or 500MB.");
                        return LoqtCli.UsageError;
                    }

                    if (parse.GetValue(layers) is < 1)
                    {
                        await error.WriteLineAsync("error: --layers must be at least 1.");
                        return LoqtCli.UsageError;
                    }

                    var config = LlamaConfig.Parse(LlamaPresets.ResolveConfigJson(parse.GetRequiredValue(shape)), parse.GetRequiredValue(shape));
                    config = config with { NumHiddenLayers = parse.GetValue(layers) ?? config.NumHiddenLayers };
                    var stored = parse.GetRequiredValue(dtype) switch
                    {
                        "bf16" => SafeTensorDType.BF16,
                        "fp32" => SafeTensorDType.F32,
                        _ => SafeTensorDType.F16,
                    };
                    report = await GenerateAndMeasureAsync(
                        config, stored, shardBytes, parse.GetRequiredValue(computeDType), parse.GetValue(workDir), parse.GetValue(keep), error, cancellationToken);
                }

                Print(report, parse.GetValue(json), output);
                return report.WithinBound ? 0 : 1;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or NotSupportedException or UnauthorizedAccessException or InvalidOperationException)
            {
                await error.WriteLineAsync("error: " + e.Message);
                return 1;
            }
        });
        return command;
    }

    /// <summary>Loads <paramref name="directory"/> with NF4 projections in this process and reports its peak RSS against the bound.</summary>
    public static LoadReport Measure(string directory, ScalarType computeDType, TextWriter log, CancellationToken cancellationToken)
    {
        using (var warmUp = ones(1))
        {
            // libtorch is initialized: the baseline is what any process that loads a model starts from.
        }

        var baseline = ProcessMemory.CurrentBytes;
        long checkpointBytes, largest;
        int shards;
        using (var checkpoint = SafeTensorsCheckpoint.Open(directory))
        {
            var infos = checkpoint.TensorNames.Select(checkpoint.GetInfo).ToArray();
            checkpointBytes = infos.Sum(i => i.ByteLength);
            largest = infos.Max(i => i.ByteLength);
            shards = checkpoint.Files.Count;
        }

        var timer = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        var options = new LlamaLoadOptions { ComputeDType = computeDType, LinearFactory = new Nf4LinearFactory() };
        using var model = LlamaForCausalLM.Load(directory, options, new Progress(p =>
        {
            if (timer.Elapsed - lastReport > TimeSpan.FromSeconds(5))
            {
                lastReport = timer.Elapsed;
                log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loading: {p.Done}/{p.Total} tensors, RSS {ProcessMemory.Format(ProcessMemory.CurrentBytes)}"));
            }
        }), cancellationToken);
        var seconds = timer.Elapsed.TotalSeconds;
        var peak = ProcessMemory.PeakBytes;
        var modelBytes = model.WeightBytes;
        var bound = modelBytes + largest + SlackBytes;
        return new LoadReport(
            Path.GetFullPath(directory), model.Config.NumHiddenLayers, computeDType == ScalarType.Float32 ? "fp32" : "bf16", shards, checkpointBytes,
            largest, modelBytes, bound, baseline, peak, seconds, peak <= bound);
    }

    private static async Task<LoadReport> GenerateAndMeasureAsync(
        LlamaConfig config, SafeTensorDType dtype, long shardBytes, string computeDType, string? workDir, bool keep, TextWriter log, CancellationToken cancellationToken)
    {
        var directory = Path.Combine(Path.GetFullPath(workDir ?? Path.GetTempPath()), "loqt-bench-load-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var timer = Stopwatch.StartNew();
            var bytes = SyntheticCheckpoint.Write(directory, config, dtype, shardBytes, line => log.WriteLine("generate: " + line), cancellationToken);
            await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"generated {directory}: {config.NumHiddenLayers} layers, {ProcessMemory.Format(bytes)} of {dtype.ToHeaderName()} in {timer.Elapsed.TotalSeconds:0.0} s"));
            return await MeasureInChildAsync(directory, computeDType, log, cancellationToken);
        }
        finally
        {
            if (keep)
            {
                await log.WriteLineAsync("kept " + directory);
            }
            else if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    /// <summary>Runs <c>loqt bench load --checkpoint DIR --json</c> in a new process, so the peak RSS is the load's alone.</summary>
    private static async Task<LoadReport> MeasureInChildAsync(string directory, string computeDType, TextWriter log, CancellationToken cancellationToken)
    {
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program is running, to start the measuring process");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            // Run as `dotnet loqt.dll`: the child needs the dll too.
            start.ArgumentList.Add(typeof(BenchLoadCommand).Assembly.Location);
        }

        foreach (var argument in new[] { "bench", "load", "--checkpoint", directory, "--compute-dtype", computeDType, "--json" })
        {
            start.ArgumentList.Add(argument);
        }

        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {self}");
        using var kill = cancellationToken.Register(() => child.Kill(entireProcessTree: true));
        var forward = Task.Run(async () =>
        {
            while (await child.StandardError.ReadLineAsync(CancellationToken.None) is { } line)
            {
                await log.WriteLineAsync(line);
            }
        }, CancellationToken.None);
        var stdout = await child.StandardOutput.ReadToEndAsync(CancellationToken.None);
        await child.WaitForExitAsync(CancellationToken.None);
        await forward;
        cancellationToken.ThrowIfCancellationRequested();
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        return (child.ExitCode is 0 or 1 && last is not null ? JsonSerializer.Deserialize<LoadReport>(last, JsonOptions) : null)
            ?? throw new InvalidOperationException($"the measuring process exited with {child.ExitCode} without a report");
    }

    private static void Print(LoadReport r, bool json, TextWriter output)
    {
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(r, JsonOptions));
            return;
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"checkpoint: {r.Checkpoint}: {r.Layers} layers, {ProcessMemory.Format(r.CheckpointBytes)} in {r.Shards} shard(s); largest tensor {ProcessMemory.Format(r.LargestTensorBytes)}"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"model in memory: {ProcessMemory.Format(r.ModelBytes)} (NF4 projections, {r.ComputeDType} embeddings, norms and head), loaded in {r.LoadSeconds:0.0} s"));
        output.WriteLine($"bound: model + largest tensor + 1 GiB = {ProcessMemory.Format(r.BoundBytes)}");
        output.WriteLine($"peak RSS: {ProcessMemory.Format(r.PeakRssBytes)} (after start-up {ProcessMemory.Format(r.BaselineRssBytes)}): {(r.WithinBound ? "within the bound" : "OVER THE BOUND")}");
    }

    // Reports synchronously on the loading thread (System.Progress would post to the thread pool).
    private sealed class Progress(Action<LlamaLoadProgress> report) : IProgress<LlamaLoadProgress>
    {
        public void Report(LlamaLoadProgress value) => report(value);
    }
}

/// <summary>What <c>loqt bench load</c> measured (bytes; seconds).</summary>
internal sealed record LoadReport(
    string Checkpoint,
    int Layers,
    string ComputeDType,
    int Shards,
    long CheckpointBytes,
    long LargestTensorBytes,
    long ModelBytes,
    long BoundBytes,
    long BaselineRssBytes,
    long PeakRssBytes,
    double LoadSeconds,
    bool WithinBound);
