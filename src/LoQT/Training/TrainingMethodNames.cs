namespace LoQT.Training;

/// <summary>The command-line names of <see cref="TrainingMethod"/> values (<c>loqt</c>, <c>loqt-nq</c>, …).</summary>
public static class TrainingMethodNames
{
    /// <summary>All names, in the order of the enum.</summary>
    public static IReadOnlyList<string> All { get; } = ["loqt", "loqt-nq", "full", "lora", "galore"];

    /// <summary>The command-line name of a method.</summary>
    /// <param name="method">The method.</param>
    public static string Format(TrainingMethod method) => method switch
    {
        TrainingMethod.Loqt => "loqt",
        TrainingMethod.LoqtNq => "loqt-nq",
        TrainingMethod.Full => "full",
        TrainingMethod.Lora => "lora",
        TrainingMethod.Galore => "galore",
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, "Unknown training method."),
    };

    /// <summary>Parses a command-line name (case-insensitive).</summary>
    /// <param name="name">One of <see cref="All"/>.</param>
    /// <exception cref="ArgumentException">Not a method name; the message lists the valid ones.</exception>
    public static TrainingMethod Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        for (var i = 0; i < All.Count; i++)
        {
            if (string.Equals(All[i], name.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                return (TrainingMethod)i;
            }
        }

        throw new ArgumentException($"Unknown method '{name}'. Valid methods: {string.Join(", ", All)}.", nameof(name));
    }
}
