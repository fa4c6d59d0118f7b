using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LoQT.Export;
using LoQT.Hub;
using LoQT.Quantization;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt export</c>: merge a LoQT checkpoint's adapters and write a Hugging Face model folder (bitsandbytes NF4 or dense), optionally pushed to the Hub.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint")
        {
            Description = "A training output directory (its latest.json names the newest checkpoint) or one checkpoint-NNNNNNN folder.",
            Required = true,
        };
        var output = new Option<string>("--output")
        {
            Description = "The model folder to create. Written into a temporary folder beside it and renamed when complete; " +
                "it must not exist or be empty, unless --force.",
            Required = true,
        };
        var format = new Option<string>("--format")
        {
            Description = "nf4: bitsandbytes 4-bit weights that transformers loads as a 4-bit model (embeddings, norms and lm_head in the compute dtype); " +
                "bf16, fp16 or fp32: every tensor dense in that dtype, for any Llama loader. Default: nf4.",
            DefaultValueFactory = _ => "nf4",
        };
        format.AcceptOnlyFromAmong([.. ExportFormats.All]);
        var doubleQuant = new Option<bool>("--double-quant")
        {
            Description = "nf4: also quantize the per-block scales to 8 bits (bnb_4bit_use_double_quant): about 0.37 fewer bits per weight.",
        };
        var computeDType = new Option<string?>("--compute-dtype")
        {
            Description = "nf4: dtype of the unquantized tensors and bnb_4bit_compute_dtype: bf16, fp16 or fp32. Default: the dtype the checkpoint was trained in.",
        };
        computeDType.AcceptOnlyFromAmong("bf16", "fp16", "fp32");
        var blockSize = new Option<int>("--blocksize")
        {
            Description = "nf4: elements per absmax block, a power of two from 32 to 4096 (bitsandbytes' default 64).",
            DefaultValueFactory = _ => Nf4BlockSizes.Default,
        };
        var maxShardSize = new Option<string>("--max-shard-size")
        {
            Description = "Largest weight shard, e.g. 5GB (the default, as Hugging Face), 500MB or a byte count; larger models get model-0000k-of-0000n.safetensors and an index.",
            DefaultValueFactory = _ => "5GB",
        };
        var force = new Option<bool>("--force") { Description = "Replace an existing non-empty --output, once the new export is complete." };
        var pushToHub = new Option<string?>("--push-to-hub") { Description = "After the export, publish the folder to this Hub repository (e.g. you/Llama-3.2-1B-loqt-nf4) as one commit; created if missing." };
        var isPrivate = new Option<bool>("--private") { Description = "With --push-to-hub: create the repository as private." };
        var token = HubCommandOptions.Token();
        var endpoint = HubCommandOptions.Endpoint();
        var json = new Option<bool>("--json") { Description = "Print one JSON line (output, files, counts, bytes, peak RSS, commit URL) instead of the path." };

        var command = new Command(
            "export",
            "Merge every adapter of a LoQT checkpoint into its weight (W = deq(Wq) + α·B·P), layer by layer, and write a Hugging Face model folder: " +
            "bitsandbytes NF4 safetensors with a quantization_config that transformers loads as a 4-bit model (or dense bf16/fp16/fp32), " +
            "config.json, the tokenizer and generation files, and a README.md model card. Progress goes to stderr; the folder's path is printed last.")
        {
            checkpoint, output, format, doubleQuant, computeDType, blockSize, maxShardSize, force, pushToHub, isPrivate, token, endpoint, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            ExportOptions options;
            var repo = parse.GetValue(pushToHub);
            try
            {
                options = new ExportOptions
                {
                    Checkpoint = parse.GetRequiredValue(checkpoint),
                    Output = parse.GetRequiredValue(output),
                    Format = ExportFormats.Parse(parse.GetRequiredValue(format), "--format"),
                    DoubleQuant = parse.GetValue(doubleQuant),
                    ComputeDType = parse.GetValue(computeDType) switch
                    {
                        null => null,
                        "bf16" => ScalarType.BFloat16,
                        "fp16" => ScalarType.Float16,
                        _ => ScalarType.Float32,
                    },
                    BlockSize = parse.GetValue(blockSize),
                    MaxShardBytes = ParseShardSize(parse.GetRequiredValue(maxShardSize)),
                    Force = parse.GetValue(force),
                    ModelId = repo,
                };
                options.Validate();
                if (repo is not null && !HubRepoId.TryParse(repo, out _))
                {
                    throw new ArgumentException($"--push-to-hub '{repo}' is not a Hub repository id (expected namespace/name).");
                }

                if (repo is null && parse.GetValue(isPrivate))
                {
                    throw new ArgumentException("--private applies to --push-to-hub; give the repository to push to.");
                }
            }
            catch (ArgumentException e)
            {
                await stderr.WriteLineAsync("error: " + e.Message.Split(" (Parameter", 2)[0]);
                return LoqtCli.UsageError;
            }

            try
            {
                var lines = TextWriter.Synchronized(stderr);
                var progress = new SynchronousProgress<ExportProgress>(p => lines.WriteLine(string.Create(
                    CultureInfo.InvariantCulture, $"[{p.Index + 1}/{p.Count}] {StepName(p.Step)} {p.Name}")));
                var result = await ModelExporter.ExportAsync(options, progress, cancellationToken);
                await lines.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"exported {result.Checkpoint} as {result.Format.ToName()}: {result.MergedLayers} layers merged, {result.QuantizedWeights} weights NF4, " +
                    $"{HubCommandOptions.FormatBytes(result.TensorBytes)} of tensors in {result.Files.Count} files; peak RSS {ProcessMemory.Format(result.PeakResidentBytes)}"));

                string? commitUrl = null;
                if (repo is not null)
                {
                    commitUrl = await PushAsync(result, repo, parse.GetValue(isPrivate), parse.GetValue(token), parse.GetValue(endpoint), lines, cancellationToken);
                }

                if (parse.GetValue(json))
                {
                    await stdout.WriteLineAsync(JsonSerializer.Serialize(new Dictionary<string, object?>
                    {
                        ["output"] = result.OutputDirectory, ["checkpoint"] = result.Checkpoint, ["format"] = result.Format.ToName(),
                        ["files"] = result.Files, ["merged_layers"] = result.MergedLayers, ["quantized_weights"] = result.QuantizedWeights,
                        ["tensor_bytes"] = result.TensorBytes, ["peak_rss_bytes"] = result.PeakResidentBytes, ["commit_url"] = commitUrl,
                    }));
                }
                else
                {
                    await stdout.WriteLineAsync(result.OutputDirectory);
                }

                return 0;
            }
            catch (OperationCanceledException)
            {
                await stderr.WriteLineAsync("error: the export was cancelled; the output folder was not written.");
                return 130;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException or NotSupportedException or KeyNotFoundException or HubException)
            {
                await stderr.WriteLineAsync("error: " + e.Message);
                return 1;
            }
        });
        return command;
    }

    private static async Task<string> PushAsync(
        ExportResult result, string repo, bool isPrivate, string? token, string? endpoint, TextWriter log, CancellationToken cancellationToken)
    {
        using var client = new HubClient(HubCommandOptions.Build(token, endpoint, cacheDir: null, offline: false, log));
        var progress = new SynchronousProgress<UploadProgress>(report =>
        {
            if (report.Status is UploadStatus.Uploaded or UploadStatus.AlreadyPresent or UploadStatus.Inline)
            {
                log.WriteLine($"push: {report.Path} ({(report.Status == UploadStatus.Inline ? "inline" : report.Status == UploadStatus.Uploaded ? "lfs" : "lfs, already on the Hub")})");
            }
        });
        var commit = await client.UploadFolderAsync(
            result.OutputDirectory,
            repo,
            new UploadFolderOptions { Private = isPrivate, CommitMessage = $"Upload LoQT export ({result.Format.ToName()})" },
            progress,
            cancellationToken);
        await log.WriteLineAsync("pushed " + commit.CommitUrl);
        return commit.CommitUrl;
    }

    private static long ParseShardSize(string text)
    {
        try
        {
            return ByteSize.Parse(text);
        }
        catch (FormatException e)
        {
            throw new ArgumentException("--max-shard-size: " + e.Message, e);
        }
    }

    private static string StepName(ExportStep step) => step switch
    {
        ExportStep.MergeAndQuantize => "merge+nf4",
        ExportStep.Merge => "merge    ",
        _ => "convert  ",
    };

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
