using System.Reflection;

namespace LoQT.Models.Llama;

/// <summary>
/// The named Llama model shapes used for pretraining from scratch (<c>9m</c> … <c>13b</c>): the shapes of the
/// reference LoQT repository's <c>configs/llama_*.json</c> (vocabulary 32000, untied lm_head), stored as
/// Hugging Face <c>config.json</c> files inside this library.
/// </summary>
public static class LlamaPresets
{
    private const string ResourcePrefix = "LoQT.Models.Llama.Presets.llama_";

    /// <summary>The preset names, smallest model first.</summary>
    public static IReadOnlyList<string> Names { get; } = ["9m", "20m", "35m", "60m", "130m", "350m", "1b", "7b", "13b"];

    /// <summary>Whether <paramref name="name"/> is a preset name (case-insensitive).</summary>
    /// <param name="name">A name such as <c>7b</c>.</param>
    public static bool IsPreset(string name) => Canonical(name) is not null;

    /// <summary>The <c>config.json</c> text of a preset.</summary>
    /// <param name="name">A preset name from <see cref="Names"/> (case-insensitive).</param>
    /// <exception cref="ArgumentException">The name is not a preset; the message lists the valid names.</exception>
    public static string GetConfigJson(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var canonical = Canonical(name) ?? throw new ArgumentException(
            $"Unknown Llama preset '{name}'. Valid presets: {string.Join(", ", Names)}.", nameof(name));
        using var stream = typeof(LlamaPresets).Assembly.GetManifestResourceStream(ResourcePrefix + canonical + ".json")
            ?? throw new InvalidOperationException($"The library was built without the resource for preset '{canonical}'.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// The <c>config.json</c> text for a preset name, a <c>config.json</c> file, or a model folder that holds one.
    /// A preset name wins over a file of the same name in the current directory.
    /// </summary>
    /// <param name="nameOrFile">A preset name (<c>7b</c>), a path to a config file, or a folder containing <c>config.json</c>.</param>
    /// <exception cref="ArgumentException">Neither a preset nor an existing file; the message lists the valid presets.</exception>
    public static string ResolveConfigJson(string nameOrFile)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrFile);
        if (Canonical(nameOrFile) is not null)
        {
            return GetConfigJson(nameOrFile);
        }

        var file = Directory.Exists(nameOrFile) ? Path.Combine(nameOrFile, "config.json") : nameOrFile;
        if (!File.Exists(file))
        {
            throw new ArgumentException(
                $"'{nameOrFile}' is neither a Llama preset ({string.Join(", ", Names)}) nor an existing config file" +
                (Directory.Exists(nameOrFile) ? " (the folder has no config.json)." : "."),
                nameof(nameOrFile));
        }

        return File.ReadAllText(file);
    }

    private static string? Canonical(string name)
    {
        var trimmed = name.Trim();
        return Names.FirstOrDefault(n => string.Equals(n, trimmed, StringComparison.OrdinalIgnoreCase));
    }
}
