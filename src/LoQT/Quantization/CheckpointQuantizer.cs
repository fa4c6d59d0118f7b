using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LoQT.SafeTensors;
using TorchSharp;

namespace LoQT.Quantization;

/// <summary>Options of <see cref="CheckpointQuantizer"/>.</summary>
public sealed record CheckpointQuantizationOptions
{
    /// <summary>Name patterns skipped unless <see cref="UseDefaultSkips"/> is off: embeddings, norms and the output head.</summary>
    public static IReadOnlyList<string> DefaultSkipPatterns { get; } = ["embed", "norm", "lm_head"];

    /// <summary>NF4 block size (a power of two from 32 to 4096).</summary>
    public int BlockSize { get; init; } = Nf4BlockSizes.Default;

    /// <summary>Whether to double-quantize the absmax values.</summary>
    public bool DoubleQuant { get; init; }

    /// <summary>More name patterns to leave unquantized (see <see cref="CheckpointQuantizer.Matches"/>).</summary>
    public IReadOnlyList<string> SkipPatterns { get; init; } = [];

    /// <summary>Whether <see cref="DefaultSkipPatterns"/> apply.</summary>
    public bool UseDefaultSkips { get; init; } = true;

    /// <summary>Largest shard when the output is a folder (Hugging Face's default 5 GB).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;
}

/// <summary>What <see cref="CheckpointQuantizer.Quantize"/> did.</summary>
/// <param name="QuantizedWeights">Names of the weights stored as NF4.</param>
/// <param name="QuantizedParameters">Elements of those weights.</param>
/// <param name="CopiedTensors">Names of the tensors copied unchanged.</param>
/// <param name="SkippedModules">Modules with a 2-D weight left unquantized (the config's <c>llm_int8_skip_modules</c>).</param>
/// <param name="InputBytes">Tensor data bytes read.</param>
/// <param name="OutputBytes">Tensor data bytes written.</param>
/// <param name="OutputFiles">Files written (full paths).</param>
public sealed record CheckpointQuantizationResult(
    IReadOnlyList<string> QuantizedWeights,
    long QuantizedParameters,
    IReadOnlyList<string> CopiedTensors,
    IReadOnlyList<string> SkippedModules,
    long InputBytes,
    long OutputBytes,
    IReadOnlyList<string> OutputFiles);

/// <summary>Progress of <see cref="CheckpointQuantizer.Quantize"/>: the tensor being handled.</summary>
/// <param name="Index">0-based position.</param>
/// <param name="Count">Number of tensors.</param>
/// <param name="Name">The tensor's name.</param>
/// <param name="Quantized">Whether it is being quantized (else copied).</param>
public sealed record CheckpointQuantizationProgress(int Index, int Count, string Name, bool Quantized);

/// <summary>
/// Quantizes a safetensors checkpoint to bitsandbytes NF4, one tensor at a time: every 2-D floating-point
/// <c>*.weight</c> not skipped becomes NF4 with its quant state; everything else is copied byte for byte.
/// </summary>
public static class CheckpointQuantizer
{
    /// <summary>config.json's file name.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>
    /// Whether a skip pattern matches a tensor name: with <c>*</c> or <c>?</c> it is a glob over the whole name
    /// (<c>*</c> also crosses dots), otherwise the name only has to contain it.
    /// </summary>
    /// <param name="pattern">The pattern.</param>
    /// <param name="name">The tensor name.</param>
    public static bool Matches(string pattern, string name)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(name);
        if (pattern.IndexOfAny(['*', '?']) < 0)
        {
            return name.Contains(pattern, StringComparison.Ordinal);
        }

        var regex = "^" + Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$";
        return Regex.IsMatch(name, regex, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    }

    /// <summary>Whether a tensor is a candidate for NF4: a 2-D floating-point <c>*.weight</c> (before skip patterns).</summary>
    /// <param name="info">The tensor's header entry.</param>
    public static bool IsLinearWeight(SafeTensorInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        return info.Name.EndsWith(".weight", StringComparison.Ordinal)
            && info.Shape.Length == 2
            && info.ElementCount > 0
            && info.DType is SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.F64;
    }

    /// <summary>Whether the options quantize this tensor.</summary>
    /// <param name="info">The tensor's header entry.</param>
    /// <param name="options">The options.</param>
    public static bool ShouldQuantize(SafeTensorInfo info, CheckpointQuantizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return IsLinearWeight(info) && !SkipPatternsOf(options).Any(p => Matches(p, info.Name));
    }

    /// <summary>
    /// Reads <paramref name="input"/> (a <c>.safetensors</c> file, an index, or a checkpoint folder) and writes the
    /// quantized checkpoint to <paramref name="output"/>: a file when it ends in <c>.safetensors</c>, else a folder
    /// (sharded past <see cref="CheckpointQuantizationOptions.MaxShardBytes"/>). A <c>config.json</c> beside the input
    /// is copied with a <c>quantization_config</c> (unless the output sits in the input's folder); for folder to folder,
    /// the other top-level files (tokenizer, …) are copied too. Peak memory is about one tensor.
    /// </summary>
    /// <param name="input">The checkpoint to read.</param>
    /// <param name="output">Where to write.</param>
    /// <param name="options">What to quantize and how.</param>
    /// <param name="progress">Told about each tensor before it is handled.</param>
    /// <param name="cancellationToken">Checked between tensors; nothing is written when cancelled.</param>
    /// <exception cref="FileNotFoundException">No checkpoint at <paramref name="input"/>.</exception>
    /// <exception cref="InvalidDataException">The input is malformed or already quantized.</exception>
    /// <exception cref="ArgumentException">The output is the input, or the options are invalid.</exception>
    public static CheckpointQuantizationResult Quantize(
        string input,
        string output,
        CheckpointQuantizationOptions options,
        IProgress<CheckpointQuantizationProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(input);
        ArgumentException.ThrowIfNullOrEmpty(output);
        ArgumentNullException.ThrowIfNull(options);
        Nf4BlockSizes.Validate(options.BlockSize, nameof(options.BlockSize));

        using var checkpoint = SafeTensorsCheckpoint.Open(input);
        var inputFolder = Path.GetDirectoryName(checkpoint.Path)!;
        var outputFull = Path.GetFullPath(output);
        var toFile = outputFull.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
        var outputFolder = toFile ? Path.GetDirectoryName(outputFull)! : outputFull;
        if (checkpoint.Files.Any(f => string.Equals(f, outputFull, StringComparison.Ordinal))
            || (!toFile && string.Equals(Path.TrimEndingDirectorySeparator(outputFolder), Path.TrimEndingDirectorySeparator(inputFolder), StringComparison.Ordinal)))
        {
            throw new ArgumentException($"the output {outputFull} would overwrite the input checkpoint; choose another path", nameof(output));
        }

        var already = checkpoint.TensorNames.FirstOrDefault(BnbNf4Format.IsQuantStateKey);
        if (already is not null)
        {
            throw new InvalidDataException($"{checkpoint.Path} is already quantized (it has '{already}')");
        }

        var infos = checkpoint.TensorNames.Select(checkpoint.GetInfo).ToArray();
        var quantized = new List<string>();
        var copied = new List<string>();
        var skippedModules = new List<string>();
        long quantizedParameters = 0, inputBytes = 0, outputBytes = 0;
        torch.ScalarType? weightDType = null;
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };

        using var sharded = toFile ? null : new ShardedSafeTensorsWriter(outputFolder, options.MaxShardBytes, metadata: metadata);
        using var single = toFile ? new SafeTensorsWriter(outputFull, metadata) : null;
        for (var i = 0; i < infos.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var info = infos[i];
            var quantize = ShouldQuantize(info, options);
            progress?.Report(new CheckpointQuantizationProgress(i, infos.Length, info.Name, quantize));
            inputBytes += info.ByteLength;
            if (quantize)
            {
                using var weight = checkpoint.ReadTensor(info.Name);
                using var nf4 = Nf4Tensor.Quantize(weight, options.BlockSize, options.DoubleQuant);
                foreach (var entry in BnbNf4Format.Serialize(info.Name, nf4))
                {
                    Add(entry.Name, entry.DType, entry.Shape, entry.Data);
                    outputBytes += entry.Data.Length;
                }

                weightDType ??= weight.dtype;
                quantized.Add(info.Name);
                quantizedParameters += info.ElementCount;
            }
            else
            {
                using (var data = checkpoint.OpenRead(info.Name))
                {
                    sharded?.Add(info.Name, info.DType, info.Shape, data);
                    single?.Add(info.Name, info.DType, info.Shape, data);
                }

                outputBytes += info.ByteLength;
                copied.Add(info.Name);
                if (IsLinearWeight(info))
                {
                    skippedModules.Add(info.Name[..^".weight".Length]);
                }
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        var files = new List<string>();
        if (single is not null)
        {
            single.Complete();
            files.Add(single.Path);
        }
        else
        {
            sharded!.Complete();
            files.AddRange(sharded.WrittenFiles);
        }

        // Next to the input (a file written beside it), the input's own config.json must stay as it is.
        var config = Path.Combine(inputFolder, ConfigFileName);
        var sameFolder = string.Equals(Path.TrimEndingDirectorySeparator(outputFolder), Path.TrimEndingDirectorySeparator(inputFolder), StringComparison.Ordinal);
        if (File.Exists(config) && !sameFolder)
        {
            var target = Path.Combine(outputFolder, ConfigFileName);
            new QuantizationConfig
            {
                UseDoubleQuant = options.DoubleQuant,
                ComputeDType = ComputeDTypeOf(config, weightDType),
                SkipModules = skippedModules,
            }.WriteIntoFile(config, target);
            files.Add(target);
        }

        if (!toFile && Directory.Exists(input))
        {
            files.AddRange(CopyCompanionFiles(inputFolder, outputFolder, checkpoint.Files));
        }

        return new CheckpointQuantizationResult(quantized, quantizedParameters, copied, skippedModules, inputBytes, outputBytes, files);

        void Add(string name, SafeTensorDType dtype, long[] shape, byte[] data)
        {
            sharded?.Add(name, dtype, shape, data);
            single?.Add(name, dtype, shape, data);
        }
    }

    private static IEnumerable<string> SkipPatternsOf(CheckpointQuantizationOptions options) =>
        options.UseDefaultSkips ? CheckpointQuantizationOptions.DefaultSkipPatterns.Concat(options.SkipPatterns) : options.SkipPatterns;

    /// <summary>config.json's <c>torch_dtype</c> (or <c>dtype</c>) when it names a float type, else the weights' dtype.</summary>
    private static string ComputeDTypeOf(string configPath, torch.ScalarType? weightDType)
    {
        try
        {
            if (JsonNode.Parse(File.ReadAllText(configPath)) is JsonObject config
                && (config["torch_dtype"] ?? config["dtype"]) is JsonValue value
                && value.TryGetValue<string>(out var name))
            {
                return BnbQuantState.TorchDTypeName(BnbQuantState.ParseTorchDType(name));
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException or ArgumentException)
        {
            // Fall back to the weights' dtype; the copy of config.json reports malformed JSON itself.
        }

        return weightDType is { } dtype ? BnbQuantState.TorchDTypeName(dtype) : "float32";
    }

    /// <summary>Copies the input folder's other top-level files (tokenizer, generation config, …), not its weights or config.</summary>
    private static List<string> CopyCompanionFiles(string inputFolder, string outputFolder, IReadOnlyList<string> weightFiles)
    {
        var copied = new List<string>();
        foreach (var file in Directory.EnumerateFiles(inputFolder))
        {
            var name = Path.GetFileName(file);
            if (name.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
                || name.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase)
                || name == ConfigFileName
                || weightFiles.Contains(Path.GetFullPath(file)))
            {
                continue;
            }

            var target = Path.Combine(outputFolder, name);
            File.Copy(file, target, overwrite: true);
            copied.Add(target);
        }

        return copied;
    }
}
