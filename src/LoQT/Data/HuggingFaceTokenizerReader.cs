using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace LoQT.Data;

/// <summary>The stages of a <c>tokenizer.json</c> tokenizer, resolved against <c>tokenizer_config.json</c>.</summary>
internal sealed record HuggingFaceTokenizerParts(
    BpeModel Model,
    TiktokenTokenizer? Tiktoken,
    IReadOnlyList<AddedToken> AddedTokens,
    TextNormalizer? Normalizer,
    TextPreTokenizer? PreTokenizer,
    TokenDecoder? Decoder,
    IReadOnlyList<int> PrefixIds,
    IReadOnlyList<int> SuffixIds,
    int? BosTokenId,
    int? EosTokenId,
    int? PadTokenId,
    int? UnknownTokenId,
    bool CleanUpTokenizationSpaces);

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> with a BPE model (SentencePiece-style with byte fallback as in
/// Llama 2 / Mistral, or byte-level as in Llama 3 and GPT-2) into a <see cref="HuggingFaceTokenizer"/>.
/// </summary>
internal static class HuggingFaceTokenizerReader
{
    public const string SupportedPostProcessors = "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence";

    /// <param name="path">The tokenizer.json file.</param>
    /// <param name="config">The directory's tokenizer_config.json (special tokens, add_bos_token/add_eos_token).</param>
    /// <param name="allowTiktoken">Let Microsoft.ML.Tokenizers' Tiktoken encode byte-level words where it gives the same ids (tests turn it off to check the general path).</param>
    public static HuggingFaceTokenizer Read(string path, TokenizerConfig config, bool allowTiktoken = true)
    {
        JsonDocument doc;
        try
        {
            using var stream = File.OpenRead(path);
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var modelElement) || modelElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{path}: not a Hugging Face tokenizer.json (no \"model\" object).");
            }

            var model = ReadBpeModel(modelElement, path);
            var addedTokens = ReadAddedTokens(root, path);
            var normalizer = TextNormalizer.FromJson(Property(root, "normalizer"), path);
            var preTokenizer = TextPreTokenizer.FromJson(Property(root, "pre_tokenizer"), path);
            var decoder = TokenDecoder.FromJson(Property(root, "decoder"), path);
            var (templatePrefix, templateSuffix) = ReadPostProcessor(Property(root, "post_processor"), path);

            int? Resolve(string? token, string name)
            {
                if (token is null)
                {
                    return null;
                }

                var added = addedTokens.FirstOrDefault(t => t.Content == token);
                if (added is not null)
                {
                    return added.Id;
                }

                return model.Vocabulary.TryGetValue(token, out var id)
                    ? id
                    : throw new InvalidDataException($"{path}: tokenizer_config.json's {name} \"{token}\" is not a token of this tokenizer.");
            }

            var bos = Resolve(config.BosToken, "bos_token") ?? config.ModelBosTokenId ?? (templatePrefix.Count > 0 ? templatePrefix[0] : null);
            var eos = Resolve(config.EosToken, "eos_token") ?? config.ModelEosTokenId ?? (templateSuffix.Count > 0 ? templateSuffix[^1] : null);
            var pad = Resolve(config.PadToken, "pad_token");
            var unk = Resolve(config.UnknownToken, "unk_token") ?? model.UnknownTokenId;

            // add_bos_token / add_eos_token in tokenizer_config.json decide over the post-processor, as transformers'
            // Llama tokenizers rebuild their template from them.
            IReadOnlyList<int> prefix = config.AddBosToken is { } addBos ? (addBos && bos is { } b ? [b] : []) : templatePrefix;
            IReadOnlyList<int> suffix = config.AddEosToken is { } addEos ? (addEos && eos is { } e ? [e] : []) : templateSuffix;

            var tiktoken = allowTiktoken && preTokenizer is { IsByteLevel: true } ? TryCreateTiktoken(modelElement, model) : null;
            return new HuggingFaceTokenizer(new HuggingFaceTokenizerParts(
                model, tiktoken, addedTokens, normalizer, preTokenizer, decoder, prefix, suffix, bos, eos, pad, unk,
                config.CleanUpTokenizationSpaces));
        }
    }

    private static JsonElement Property(JsonElement root, string name)
        => root.TryGetProperty(name, out var value) ? value : default;

    private static BpeModel ReadBpeModel(JsonElement model, string path)
    {
        var type = HuggingFaceJson.OptionalString(model, "type") ?? (model.TryGetProperty("merges", out _) ? "BPE" : "unknown");
        if (type != "BPE")
        {
            throw new NotSupportedException($"{path}: tokenizer model \"{type}\" is not supported (supported: BPE).");
        }

        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
        {
            throw new NotSupportedException($"{path}: BPE dropout is not supported (it makes tokenization random).");
        }

        if (!model.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{path}: model.vocab must be an object of token → id.");
        }

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id < 0)
            {
                throw new InvalidDataException($"{path}: model.vocab[\"{entry.Name}\"] must be a non-negative integer id.");
            }

            vocabulary[entry.Name] = id;
        }

        var merges = new List<(string, string)>();
        foreach (var merge in HuggingFaceJson.Array(model, "merges", path))
        {
            // "a b" in older files, ["a", "b"] in newer ones.
            if (merge.ValueKind == JsonValueKind.String)
            {
                var text = merge.GetString()!;
                var space = text.IndexOf(' ', StringComparison.Ordinal);
                if (space <= 0 || space != text.LastIndexOf(' '))
                {
                    throw new InvalidDataException($"{path}: merge {merges.Count} \"{text}\" is not two tokens separated by one space.");
                }

                merges.Add((text[..space], text[(space + 1)..]));
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                     && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
            {
                merges.Add((merge[0].GetString()!, merge[1].GetString()!));
            }
            else
            {
                throw new InvalidDataException($"{path}: merge {merges.Count} must be \"a b\" or [\"a\", \"b\"].");
            }
        }

        var unknownToken = HuggingFaceJson.OptionalString(model, "unk_token");
        int? unknownId = null;
        if (unknownToken is not null)
        {
            unknownId = vocabulary.TryGetValue(unknownToken, out var id)
                ? id
                : throw new InvalidDataException($"{path}: model.unk_token \"{unknownToken}\" is not in the vocabulary.");
        }

        return new BpeModel(
            vocabulary,
            merges,
            unknownId,
            HuggingFaceJson.Bool(model, "fuse_unk", false),
            HuggingFaceJson.Bool(model, "byte_fallback", false),
            HuggingFaceJson.Bool(model, "ignore_merges", false),
            HuggingFaceJson.OptionalString(model, "continuing_subword_prefix"),
            HuggingFaceJson.OptionalString(model, "end_of_word_suffix"),
            path);
    }

    private static List<AddedToken> ReadAddedTokens(JsonElement root, string path)
    {
        var tokens = new List<AddedToken>();
        if (!root.TryGetProperty("added_tokens", out var added) || added.ValueKind != JsonValueKind.Array)
        {
            return tokens;
        }

        foreach (var t in added.EnumerateArray())
        {
            if (!t.TryGetProperty("id", out var id) || !id.TryGetInt32(out var idValue))
            {
                throw new InvalidDataException($"{path}: added_tokens[{tokens.Count}] has no integer \"id\".");
            }

            var special = HuggingFaceJson.Bool(t, "special", false);
            tokens.Add(new AddedToken(
                idValue,
                HuggingFaceJson.String(t, "content", path),
                special,
                HuggingFaceJson.Bool(t, "single_word", false),
                HuggingFaceJson.Bool(t, "lstrip", false),
                HuggingFaceJson.Bool(t, "rstrip", false),
                HuggingFaceJson.Bool(t, "normalized", !special)));
        }

        return tokens;
    }

    // The special-token ids a post-processor puts before and after a single sequence.
    private static (List<int> Prefix, List<int> Suffix) ReadPostProcessor(JsonElement element, string path)
    {
        var prefix = new List<int>();
        var suffix = new List<int>();
        if (element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return (prefix, suffix);
        }

        var type = HuggingFaceJson.TypeOf(element, "post_processor", path);
        switch (type)
        {
            case "ByteLevel":
                break;
            case "Sequence":
                foreach (var part in HuggingFaceJson.Array(element, "processors", path))
                {
                    var (p, s) = ReadPostProcessor(part, path);
                    prefix.AddRange(p);
                    suffix.InsertRange(0, s);
                }

                break;
            case "TemplateProcessing":
                var specials = element.TryGetProperty("special_tokens", out var st) && st.ValueKind == JsonValueKind.Object ? st : default;
                var seenSequence = false;
                foreach (var piece in HuggingFaceJson.Array(element, "single", path))
                {
                    if (piece.TryGetProperty("Sequence", out _))
                    {
                        seenSequence = true;
                    }
                    else if (piece.TryGetProperty("SpecialToken", out var special))
                    {
                        var name = HuggingFaceJson.String(special, "id", path);
                        if (specials.ValueKind != JsonValueKind.Object || !specials.TryGetProperty(name, out var entry))
                        {
                            throw new InvalidDataException($"{path}: post_processor template uses \"{name}\", which its special_tokens do not define.");
                        }

                        var ids = HuggingFaceJson.Array(entry, "ids", path).Select(i => i.GetInt32());
                        (seenSequence ? suffix : prefix).AddRange(ids);
                    }
                }

                break;
            case "RobertaProcessing":
            case "BertProcessing":
                prefix.Add(PairId(element, "cls", path));
                suffix.Add(PairId(element, "sep", path));
                break;
            default:
                throw new NotSupportedException($"{path}: post_processor \"{type}\" is not supported (supported: {SupportedPostProcessors}).");
        }

        return (prefix, suffix);
    }

    private static int PairId(JsonElement element, string name, string path)
    {
        if (element.TryGetProperty(name, out var pair) && pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2 && pair[1].TryGetInt32(out var id))
        {
            return id;
        }

        throw new InvalidDataException($"{path}: post_processor \"{name}\" must be [token, id].");
    }

    /// <summary>
    /// Tiktoken merges the adjacent pair whose concatenation has the lowest id and takes a whole word that is in the
    /// vocabulary as is. That is the tokenizers library's BPE when <c>ignore_merges</c> is set and the merges are in
    /// the order of the ids they make — true of Llama 3, which was converted from tiktoken. Otherwise <c>null</c>.
    /// </summary>
    private static TiktokenTokenizer? TryCreateTiktoken(JsonElement modelElement, BpeModel model)
    {
        if (!model.IgnoreMerges || model.ByteFallback || model.UnknownTokenId is not null
            || model.ContinuingSubwordPrefix is not null || model.EndOfWordSuffix is not null)
        {
            return null;
        }

        var previousId = -1;
        foreach (var merge in modelElement.GetProperty("merges").EnumerateArray())
        {
            var merged = merge.ValueKind == JsonValueKind.String
                ? merge.GetString()!.Replace(" ", string.Empty, StringComparison.Ordinal)
                : merge[0].GetString() + merge[1].GetString();
            var id = model.Vocabulary[merged];
            if (id < previousId)
            {
                return null;
            }

            previousId = id;
        }

        var lines = new StringBuilder(model.Vocabulary.Count * 16);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (token, id) in model.Vocabulary)
        {
            var bytes = ByteLevelAlphabet.TryDecode(token);
            if (bytes is null)
            {
                return null;
            }

            var base64 = Convert.ToBase64String(bytes);
            if (!seen.Add(base64))
            {
                return null;
            }

            lines.Append(base64).Append(' ').Append(id.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }

        // Every single byte must be a token, or tiktoken could not encode arbitrary text.
        if (Enumerable.Range(0, 256).Any(b => !seen.Contains(Convert.ToBase64String([(byte)b]))))
        {
            return null;
        }

        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(lines.ToString()));
        return TiktokenTokenizer.Create(stream, preTokenizer: null, normalizer: null);
    }
}
