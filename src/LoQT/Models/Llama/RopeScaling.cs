namespace LoQT.Models.Llama;

/// <summary>
/// The <c>rope_scaling</c> entry of a Llama <c>config.json</c>: how rotary position frequencies are stretched for
/// contexts longer than the model was first trained on.
/// </summary>
/// <param name="Type">
/// <c>llama3</c> (Llama 3.1 frequency-band rescaling) or <c>linear</c> (every frequency divided by <paramref name="Factor"/>).
/// </param>
/// <param name="Factor">The context-length multiplier.</param>
/// <param name="LowFreqFactor"><c>llama3</c>: wavelengths above original context ÷ this are divided by <paramref name="Factor"/>.</param>
/// <param name="HighFreqFactor"><c>llama3</c>: wavelengths below original context ÷ this are left alone; in between they are interpolated.</param>
/// <param name="OriginalMaxPositionEmbeddings"><c>llama3</c>: the context length of the unscaled model.</param>
public sealed record RopeScaling(
    string Type,
    double Factor,
    double LowFreqFactor = 1.0,
    double HighFreqFactor = 4.0,
    int OriginalMaxPositionEmbeddings = 8192)
{
    /// <summary>The Llama 3.1 scaling type.</summary>
    public const string Llama3 = "llama3";

    /// <summary>The linear (position interpolation) scaling type.</summary>
    public const string Linear = "linear";

    /// <summary>The scaling types this implementation computes.</summary>
    public static IReadOnlyList<string> SupportedTypes { get; } = [Llama3, Linear];
}
