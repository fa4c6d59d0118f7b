namespace LoQT.Loqt;

/// <summary>How the targeted linear layers of a model are trained: LoQT, its unquantized variant, or a baseline.</summary>
public enum LoqtMethod
{
    /// <summary><c>loqt</c>: NF4 weight, NF4 projection P from the gradient's SVD, trainable B, periodic merges.</summary>
    Loqt,

    /// <summary><c>loqt-nq</c>: LoQT with neither W nor P quantized.</summary>
    LoqtNoQuantization,

    /// <summary><c>full</c>: ordinary full-rank training of dense weights.</summary>
    Full,

    /// <summary><c>lora</c>: frozen W, trainable A (random) and B (zero), never merged.</summary>
    Lora,

    /// <summary><c>galore</c>: dense trainable weights updated by GaLore's projected-gradient AdamW.</summary>
    GaLore,
}

/// <summary>The command-line names of <see cref="LoqtMethod"/> values.</summary>
public static class LoqtMethodNames
{
    private static readonly (string Name, LoqtMethod Method)[] Names =
    [
        ("loqt", LoqtMethod.Loqt),
        ("loqt-nq", LoqtMethod.LoqtNoQuantization),
        ("full", LoqtMethod.Full),
        ("lora", LoqtMethod.Lora),
        ("galore", LoqtMethod.GaLore),
    ];

    /// <summary>All names, in the order they are listed in help and errors.</summary>
    public static IReadOnlyList<string> All { get; } = Names.Select(n => n.Name).ToArray();

    /// <summary>The name of <paramref name="method"/> (e.g. <c>loqt-nq</c>).</summary>
    /// <param name="method">The method.</param>
    public static string ToName(this LoqtMethod method)
    {
        foreach (var (name, value) in Names)
        {
            if (value == method)
            {
                return name;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(method), method, "Unknown LoQT method.");
    }

    /// <summary>Parses a method name (case-insensitive).</summary>
    /// <param name="name">One of <see cref="All"/>.</param>
    /// <param name="optionName">The option to name in the error (e.g. <c>--method</c>).</param>
    /// <exception cref="ArgumentException">The name is not a known method.</exception>
    public static LoqtMethod Parse(string name, string optionName = "method")
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var (known, value) in Names)
        {
            if (string.Equals(known, name.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        throw new ArgumentException($"Unknown method '{name}' for {optionName}: expected one of {string.Join(", ", All)}.", optionName);
    }
}
