using System.Text.Json;

namespace LoQT.Data;

/// <summary>
/// What a model directory says about its tokenizer's special tokens: <c>tokenizer_config.json</c>
/// (token strings, <c>add_bos_token</c>/<c>add_eos_token</c>, <c>clean_up_tokenization_spaces</c>),
/// with <c>config.json</c>'s <c>bos_token_id</c>/<c>eos_token_id</c> as a fallback.
/// </summary>
internal sealed record TokenizerConfig
{
    public string? BosToken { get; init; }
    public string? EosToken { get; init; }
    public string? PadToken { get; init; }
    public string? UnknownToken { get; init; }

    /// <summary><c>add_bos_token</c> when the file sets it; <c>null</c> leaves the choice to the tokenizer format.</summary>
    public bool? AddBosToken { get; init; }

    /// <summary><c>add_eos_token</c> when the file sets it.</summary>
    public bool? AddEosToken { get; init; }

    /// <summary>transformers' post-decode clean-up (" ." to "." and the like); off when the file does not ask for it.</summary>
    public bool CleanUpTokenizationSpaces { get; init; }

    /// <summary><c>bos_token_id</c> from <c>config.json</c> (used when <c>tokenizer_config.json</c> names no BOS).</summary>
    public int? ModelBosTokenId { get; init; }

    /// <summary><c>eos_token_id</c> from <c>config.json</c> (the first one when it is a list).</summary>
    public int? ModelEosTokenId { get; init; }

    public static TokenizerConfig Load(string directory)
    {
        var config = new TokenizerConfig();
        var tokenizerConfigPath = Path.Combine(directory, "tokenizer_config.json");
        if (File.Exists(tokenizerConfigPath))
        {
            using var doc = ParseFile(tokenizerConfigPath);
            var root = doc.RootElement;
            config = config with
            {
                BosToken = TokenString(root, "bos_token", tokenizerConfigPath),
                EosToken = TokenString(root, "eos_token", tokenizerConfigPath),
                PadToken = TokenString(root, "pad_token", tokenizerConfigPath),
                UnknownToken = TokenString(root, "unk_token", tokenizerConfigPath),
                AddBosToken = OptionalBool(root, "add_bos_token", tokenizerConfigPath),
                AddEosToken = OptionalBool(root, "add_eos_token", tokenizerConfigPath),
                CleanUpTokenizationSpaces = OptionalBool(root, "clean_up_tokenization_spaces", tokenizerConfigPath) ?? false,
            };
        }

        var modelConfigPath = Path.Combine(directory, "config.json");
        if (File.Exists(modelConfigPath))
        {
            using var doc = ParseFile(modelConfigPath);
            config = config with
            {
                ModelBosTokenId = FirstId(doc.RootElement, "bos_token_id"),
                ModelEosTokenId = FirstId(doc.RootElement, "eos_token_id"),
            };
        }

        return config;
    }

    private static JsonDocument ParseFile(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            var doc = JsonDocument.Parse(stream);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw new InvalidDataException($"{path}: expected a JSON object.");
            }

            return doc;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    // Special tokens are written either as plain strings or as AddedToken objects {"content": ...}.
    private static string? TokenString(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String
                => content.GetString(),
            _ => throw new InvalidDataException(
                $"{path}: \"{name}\" must be a string or an object with \"content\", got {value.ValueKind}."),
        };
    }

    private static bool? OptionalBool(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidDataException($"{path}: \"{name}\" must be true or false, got {value.ValueKind}."),
        };
    }

    private static int? FirstId(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value))
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() > 0)
        {
            value = value[0];
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var id) ? id : null;
    }
}
