using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Export;

/// <summary>What <see cref="ModelExporter.ExportAsync"/> reads, writes and how.</summary>
public sealed record ExportOptions
{
    /// <summary>The largest shard Hugging Face writes by default (5 GB).</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>A training output directory (its <c>latest.json</c> names the checkpoint) or one checkpoint folder.</summary>
    public required string Checkpoint { get; init; }

    /// <summary>The folder to create. It must not exist, or be empty, unless <see cref="Force"/>.</summary>
    public required string Output { get; init; }

    /// <summary>NF4 (bitsandbytes) or a full-precision dtype.</summary>
    public ExportFormat Format { get; init; } = ExportFormat.Nf4;

    /// <summary>NF4 only: also 8-bit quantize the absmax values (bitsandbytes' <c>bnb_4bit_use_double_quant</c>).</summary>
    public bool DoubleQuant { get; init; }

    /// <summary>NF4 only: elements per absmax block (bitsandbytes' 64; transformers reads it from each weight's quant state).</summary>
    public int BlockSize { get; init; } = Nf4BlockSizes.Default;

    /// <summary>
    /// NF4 only: the dtype of the unquantized tensors (embeddings, norms, <c>lm_head</c>), of the dequantized weights
    /// (the quant state's <c>dtype</c>) and the <c>bnb_4bit_compute_dtype</c>: F32, BF16 or F16. Null: the dtype the
    /// checkpoint was trained in.
    /// </summary>
    public ScalarType? ComputeDType { get; init; }

    /// <summary>The largest shard in bytes of tensor data; past it the weights are split with a <c>model.safetensors.index.json</c>.</summary>
    public long MaxShardBytes { get; init; } = DefaultMaxShardBytes;

    /// <summary>Replace an existing non-empty <see cref="Output"/> (only once the new export is complete).</summary>
    public bool Force { get; init; }

    /// <summary>The Hub repository id the model card names in its usage examples (e.g. where the export is pushed); null: the folder's name.</summary>
    public string? ModelId { get; init; }

    /// <summary>Checks the options that need no files, naming the option in the error.</summary>
    /// <exception cref="ArgumentException">An option is missing, out of range, or does not apply to the format.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Checkpoint))
        {
            throw new ArgumentException("--checkpoint is required.", nameof(Checkpoint));
        }

        if (string.IsNullOrWhiteSpace(Output))
        {
            throw new ArgumentException("--output is required.", nameof(Output));
        }

        if (!Enum.IsDefined(Format))
        {
            throw new ArgumentException($"Unknown format {(int)Format}: expected one of {string.Join(", ", ExportFormats.All)}.", nameof(Format));
        }

        if (MaxShardBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxShardBytes), MaxShardBytes, $"--max-shard-size must be positive; got {MaxShardBytes}.");
        }

        if (Format != ExportFormat.Nf4)
        {
            if (DoubleQuant)
            {
                throw new ArgumentException($"--double-quant applies to --format nf4 only, not {Format.ToName()}.", nameof(DoubleQuant));
            }

            if (ComputeDType is not null)
            {
                throw new ArgumentException($"--compute-dtype applies to --format nf4 only; --format {Format.ToName()} stores every tensor in that dtype.", nameof(ComputeDType));
            }

            return;
        }

        if (!Nf4BlockSizes.IsValid(BlockSize))
        {
            throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, $"--blocksize must be a power of two from {Nf4BlockSizes.Min} to {Nf4BlockSizes.Max}; got {BlockSize}.");
        }

        if (ComputeDType is not (null or ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
        {
            throw new ArgumentException($"--compute-dtype must be fp32, bf16 or fp16; got {ComputeDType}.", nameof(ComputeDType));
        }
    }
}
