using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LoQT.Data;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> normalizer, applied to each stretch of text between added tokens.
/// Supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase.
/// </summary>
internal abstract class TextNormalizer
{
    public const string Supported = "Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase";

    public abstract string Normalize(string text);

    /// <summary>Builds the normalizer a tokenizer.json element describes; <c>null</c> for a JSON null.</summary>
    public static TextNormalizer? FromJson(JsonElement element, string source)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var type = HuggingFaceJson.TypeOf(element, "normalizer", source);
        return type switch
        {
            "Sequence" => new SequenceNormalizer(
                [.. HuggingFaceJson.Array(element, "normalizers", source).Select(e => FromJson(e, source)).OfType<TextNormalizer>()]),
            "Prepend" => new PrependNormalizer(HuggingFaceJson.String(element, "prepend", source)),
            "Replace" => HuggingFaceJson.LiteralPattern(element) is { Length: > 0 } literal
                ? new LiteralReplaceNormalizer(literal, HuggingFaceJson.String(element, "content", source))
                : new ReplaceNormalizer(HuggingFaceJson.Pattern(element, source), HuggingFaceJson.String(element, "content", source)),
            "NFC" => new UnicodeNormalizer(NormalizationForm.FormC),
            "NFD" => new UnicodeNormalizer(NormalizationForm.FormD),
            "NFKC" => new UnicodeNormalizer(NormalizationForm.FormKC),
            "NFKD" => new UnicodeNormalizer(NormalizationForm.FormKD),
            "Lowercase" => new LowercaseNormalizer(),
            _ => throw new NotSupportedException($"{source}: normalizer \"{type}\" is not supported (supported: {Supported})."),
        };
    }

    private sealed class SequenceNormalizer(IReadOnlyList<TextNormalizer> parts) : TextNormalizer
    {
        public override string Normalize(string text)
        {
            foreach (var part in parts)
            {
                text = part.Normalize(text);
            }

            return text;
        }
    }

    // Llama 2 / Mistral: "▁" before every non-empty stretch.
    private sealed class PrependNormalizer(string prefix) : TextNormalizer
    {
        public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
    }

    private sealed class ReplaceNormalizer(Regex pattern, string content) : TextNormalizer
    {
        public override string Normalize(string text) => pattern.Replace(text, content.Replace("$", "$$", StringComparison.Ordinal));
    }

    private sealed class LiteralReplaceNormalizer(string pattern, string content) : TextNormalizer
    {
        public override string Normalize(string text) => text.Replace(pattern, content, StringComparison.Ordinal);
    }

    private sealed class UnicodeNormalizer(NormalizationForm form) : TextNormalizer
    {
        public override string Normalize(string text) => text.Normalize(form);
    }

    private sealed class LowercaseNormalizer : TextNormalizer
    {
        public override string Normalize(string text) => text.ToLowerInvariant();
    }
}
