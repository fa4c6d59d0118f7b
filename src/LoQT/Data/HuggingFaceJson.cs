using System.Text.Json;
using System.Text.RegularExpressions;

namespace LoQT.Data;

/// <summary>Typed reads from <c>tokenizer.json</c> elements with errors that name the file and the field.</summary>
internal static class HuggingFaceJson
{
    public static string TypeOf(JsonElement element, string what, string source)
    {
        if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
        {
            throw new InvalidDataException($"{source}: {what} has no \"type\".");
        }

        return type.GetString()!;
    }

    public static JsonElement.ArrayEnumerator Array(JsonElement element, string name, string source)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException($"{source}: \"{name}\" must be an array.");
        }

        return value.EnumerateArray();
    }

    public static string String(JsonElement element, string name, string source)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
        {
            throw new InvalidDataException($"{source}: \"{name}\" must be a string.");
        }

        return value.GetString()!;
    }

    public static string? OptionalString(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    public static bool Bool(JsonElement element, string name, bool defaultValue)
        => element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : defaultValue;

    public static int Int(JsonElement element, string name, int defaultValue)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt32() : defaultValue;

    /// <summary>A <c>"pattern": {"String": …}</c> (literal) or <c>{"Regex": …}</c> as a .NET regex.</summary>
    public static Regex Pattern(JsonElement element, string source)
        => LiteralPattern(element) is { } literal ? new Regex(Regex.Escape(literal), RegexOptions.CultureInvariant) : RegexPattern(element, source);

    /// <summary>The text of a <c>"pattern": {"String": …}</c>, or <c>null</c> when the pattern is a regex.</summary>
    public static string? LiteralPattern(JsonElement element)
        => element.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object
           && pattern.TryGetProperty("String", out var literal) && literal.ValueKind == JsonValueKind.String
            ? literal.GetString()
            : null;

    private static Regex RegexPattern(JsonElement element, string source)
    {
        if (element.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object)
        {
            if (pattern.TryGetProperty("Regex", out var regex) && regex.ValueKind == JsonValueKind.String)
            {
                try
                {
                    // The tokenizers library uses Oniguruma; the patterns tokenizers ship (GPT-2, Llama 3) mean the same in .NET.
                    return new Regex(regex.GetString()!, RegexOptions.CultureInvariant | RegexOptions.Compiled);
                }
                catch (ArgumentException e)
                {
                    throw new NotSupportedException($"{source}: regex \"{regex.GetString()}\" is not supported by .NET ({e.Message}).", e);
                }
            }
        }

        throw new InvalidDataException($"{source}: \"pattern\" must be {{\"String\": …}} or {{\"Regex\": …}}.");
    }
}
