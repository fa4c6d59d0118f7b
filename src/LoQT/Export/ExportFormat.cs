using static TorchSharp.torch;

namespace LoQT.Export;

/// <summary>What <see cref="ModelExporter"/> writes.</summary>
public enum ExportFormat
{
    /// <summary>
    /// <c>nf4</c>: every decoder projection as bitsandbytes NF4 (the layout transformers loads as <c>Linear4bit</c>),
    /// embeddings, norms and <c>lm_head</c> in the compute dtype, and a <c>quantization_config</c> in config.json.
    /// </summary>
    Nf4,

    /// <summary><c>bf16</c>: every tensor dense in bfloat16.</summary>
    BFloat16,

    /// <summary><c>fp16</c>: every tensor dense in float16.</summary>
    Float16,

    /// <summary><c>fp32</c>: every tensor dense in float32.</summary>
    Float32,
}

/// <summary>The command-line names of <see cref="ExportFormat"/> values and the dtypes they stand for.</summary>
public static class ExportFormats
{
    private static readonly (string Name, ExportFormat Format)[] Names =
    [
        ("nf4", ExportFormat.Nf4), ("bf16", ExportFormat.BFloat16), ("fp16", ExportFormat.Float16), ("fp32", ExportFormat.Float32),
    ];

    /// <summary>All names, in the order help and errors list them.</summary>
    public static IReadOnlyList<string> All { get; } = Names.Select(n => n.Name).ToArray();

    /// <summary>The name of <paramref name="format"/> (e.g. <c>bf16</c>).</summary>
    /// <param name="format">The format.</param>
    public static string ToName(this ExportFormat format) =>
        Names.FirstOrDefault(n => n.Format == format).Name ?? throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown export format.");

    /// <summary>Parses a format name (case-insensitive).</summary>
    /// <param name="name">One of <see cref="All"/>.</param>
    /// <param name="optionName">The option to name in the error.</param>
    /// <exception cref="ArgumentException">Not a known format.</exception>
    public static ExportFormat Parse(string name, string optionName = "format")
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var (known, format) in Names)
        {
            if (string.Equals(known, name.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                return format;
            }
        }

        throw new ArgumentException($"Unknown format '{name}' for {optionName}: expected one of {string.Join(", ", All)}.", optionName);
    }

    /// <summary>The dtype every tensor of a full-precision format is stored in; null for <see cref="ExportFormat.Nf4"/>.</summary>
    /// <param name="format">The format.</param>
    public static ScalarType? DenseDType(this ExportFormat format) => format switch
    {
        ExportFormat.BFloat16 => ScalarType.BFloat16,
        ExportFormat.Float16 => ScalarType.Float16,
        ExportFormat.Float32 => ScalarType.Float32,
        _ => null,
    };
}
