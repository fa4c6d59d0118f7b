using System.Globalization;

namespace LoQT.Tool;

/// <summary>Memory sizes on the command line (printing them is <see cref="LoQT.Training.ProcessMemory.Format"/>): <c>24GiB</c>, <c>16GB</c>, <c>512MiB</c>, <c>1.5G</c>, <c>1048576</c>.</summary>
internal static class ByteSize
{
    // Binary units (KiB…TiB, and the bare K/M/G/T that docker and the JVM read as binary), decimal units (kB…TB).
    private static readonly (string Unit, long Factor)[] Units =
    [
        ("TiB", 1L << 40), ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10),
        ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000),
        ("T", 1L << 40), ("G", 1L << 30), ("M", 1L << 20), ("K", 1L << 10),
        ("B", 1),
    ];

    /// <summary>Parses a positive size (invariant culture: <c>.</c> is the decimal point; units are case-insensitive).</summary>
    /// <exception cref="FormatException">Not a number followed by a known unit, or not positive; the message says what is accepted.</exception>
    public static long Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        var factor = 1L;
        var number = trimmed;
        foreach (var (unit, unitFactor) in Units)
        {
            if (trimmed.EndsWith(unit, StringComparison.OrdinalIgnoreCase))
            {
                factor = unitFactor;
                number = trimmed[..^unit.Length].TrimEnd();
                break;
            }
        }

        if (number.Length == 0
            || !double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
            || !double.IsFinite(value) || value <= 0 || value * factor >= long.MaxValue)
        {
            throw new FormatException(
                $"'{text}' is not a memory size: use a positive number and a unit, such as 24GiB, 16GB, 512MiB or 1.5G " +
                "(KiB/MiB/GiB/TiB and K/M/G/T are powers of 1024, KB/MB/GB/TB powers of 1000).");
        }

        return (long)Math.Round(value * factor);
    }
}
