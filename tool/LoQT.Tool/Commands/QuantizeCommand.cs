using System.CommandLine;
using System.Globalization;
using LoQT.Quantization;
using LoQT.Training;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt quantize</c>: NF4-quantize the linear weights of a safetensors checkpoint into bitsandbytes format.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var input = new Option<string>("--input")
        {
            Description = "Checkpoint to read: a .safetensors file, a model.safetensors.index.json, or a folder with either.",
            Required = true,
        };
        var output = new Option<string>("--output")
        {
            Description = "Where to write: a file when it ends in .safetensors, else a folder (model.safetensors, sharded when large, " +
                "plus config.json with quantization_config and the input folder's other files such as the tokenizer).",
            Required = true,
        };
        var doubleQuant = new Option<bool>("--double-quant")
        {
            Description = "Also quantize the per-block scales to 8 bits (blocks of 256): about 0.37 fewer bits per parameter.",
        };
        var blockSize = new Option<int>("--blocksize")
        {
            Description = "Elements per NF4 scale: a power of two from 32 to 4096.",
            DefaultValueFactory = _ => Nf4BlockSizes.Default,
        };
        var skip = new Option<string[]>("--skip")
        {
            Description = "Leave tensors whose name contains this text unquantized; with * or ? it is a glob over the whole name " +
                "(e.g. 'model.layers.0.*'). Repeatable. Embeddings, norms and lm_head are always skipped unless --no-default-skips.",
        };
        var noDefaultSkips = new Option<bool>("--no-default-skips")
        {
            Description = "Quantize embeddings, norms and lm_head too when they are 2-D weights.",
        };
        var maxShardSize = new Option<string>("--max-shard-size")
        {
            Description = "Largest output shard when writing a folder, e.g. 5GB, 500MB or a byte count.",
            DefaultValueFactory = _ => "5GB",
        };
        var verbose = new Option<bool>("--verbose") { Description = "Print each tensor as it is handled (on stderr)." };

        var command = new Command(
            "quantize",
            "Quantize every 2-D *.weight of the linear layers to NF4 (bit-exact with bitsandbytes) and write bitsandbytes-format " +
            "safetensors that Hugging Face transformers loads; other tensors are copied unchanged. Reads and writes one tensor at a time.")
        {
            input, output, doubleQuant, blockSize, skip, noDefaultSkips, maxShardSize, verbose,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            var block = parse.GetValue(blockSize);
            if (!Nf4BlockSizes.IsValid(block))
            {
                stderr.WriteLine($"error: --blocksize must be a power of two from {Nf4BlockSizes.Min} to {Nf4BlockSizes.Max}; got {block}.");
                return Task.FromResult(LoqtCli.UsageError);
            }

            if (!TryParseSize(parse.GetValue(maxShardSize)!, out var shardBytes))
            {
                stderr.WriteLine($"error: --max-shard-size '{parse.GetValue(maxShardSize)}' is not a size such as 5GB, 500MB or 1000000.");
                return Task.FromResult(LoqtCli.UsageError);
            }

            var options = new CheckpointQuantizationOptions
            {
                BlockSize = block,
                DoubleQuant = parse.GetValue(doubleQuant),
                SkipPatterns = parse.GetValue(skip) ?? [],
                UseDefaultSkips = !parse.GetValue(noDefaultSkips),
                MaxShardBytes = shardBytes,
            };
            var progress = parse.GetValue(verbose)
                ? new SynchronousProgress(p => stderr.WriteLine($"[{p.Index + 1}/{p.Count}] {(p.Quantized ? "quantize" : "copy    ")} {p.Name}"))
                : null;
            try
            {
                var result = CheckpointQuantizer.Quantize(parse.GetValue(input)!, parse.GetValue(output)!, options, progress, cancellationToken);
                Report(result, options, stdout);
                return Task.FromResult(0);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException or KeyNotFoundException)
            {
                stderr.WriteLine("error: " + e.Message);
                return Task.FromResult(1);
            }
        });
        return command;
    }

    private static void Report(CheckpointQuantizationResult result, CheckpointQuantizationOptions options, TextWriter output)
    {
        var c = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(c,
            $"quantized {result.QuantizedWeights.Count} weights ({result.QuantizedParameters:N0} parameters) to NF4, block size {options.BlockSize}, double quantization {(options.DoubleQuant ? "on" : "off")}"));
        output.WriteLine(string.Create(c, $"copied {result.CopiedTensors.Count} tensors unchanged"));
        if (result.SkippedModules.Count > 0)
        {
            output.WriteLine("left unquantized: " + string.Join(", ", result.SkippedModules));
        }

        output.WriteLine($"tensor data: {Bytes(result.InputBytes)} -> {Bytes(result.OutputBytes)}");
        // The checkpoint streams through one tensor at a time; the peak shows it (bytes too, for scripts and tests).
        output.WriteLine(string.Create(c, $"peak RSS {ProcessMemory.Format(ProcessMemory.PeakBytes)} ({ProcessMemory.PeakBytes} bytes)"));
        foreach (var file in result.OutputFiles)
        {
            output.WriteLine("wrote " + file);
        }
    }

    internal static string Bytes(long bytes) => bytes switch
    {
        >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:F2} GB"),
        >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:F2} MB"),
        >= 1_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e3:F1} kB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };

    internal static bool TryParseSize(string text, out long bytes)
    {
        var trimmed = text.Trim();
        var units = new (string Suffix, long Factor)[] { ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000), ("GIB", 1L << 30), ("MIB", 1L << 20), ("KIB", 1L << 10), ("B", 1) };
        foreach (var (suffix, factor) in units.OrderByDescending(u => u.Suffix.Length))
        {
            if (trimmed.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(trimmed[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value > 0)
            {
                bytes = (long)(value * factor);
                return bytes > 0;
            }
        }

        var parsed = long.TryParse(trimmed, NumberStyles.None, CultureInfo.InvariantCulture, out bytes);
        return parsed && bytes > 0;
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
    private sealed class SynchronousProgress(Action<CheckpointQuantizationProgress> report) : IProgress<CheckpointQuantizationProgress>
    {
        public void Report(CheckpointQuantizationProgress value) => report(value);
    }
}
