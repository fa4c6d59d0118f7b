using System.Text.Json;

namespace LoQT.Training;

/// <summary>
/// The dimensions of a Llama model that the memory planner needs, read from a Hugging Face <c>config.json</c>.
/// </summary>
/// <remarks>
/// Temporary: parses only these fields, with transformers' <c>LlamaConfig</c> defaults for the optional ones, until
/// the library's own Llama config type lands; then it is built from that instead.
/// </remarks>
internal sealed record ModelShape(
    int HiddenSize,
    int IntermediateSize,
    int NumHiddenLayers,
    int NumAttentionHeads,
    int NumKeyValueHeads,
    int HeadDim,
    int VocabSize,
    int MaxPositionEmbeddings,
    bool TieWordEmbeddings,
    bool AttentionBias,
    bool MlpBias)
{
    /// <summary>The seven linear layers of one decoder layer, as (name, out, in) like <c>nn.Linear</c>'s weight.</summary>
    public IReadOnlyList<LinearShape> LayerLinears =>
    [
        new("q_proj", NumAttentionHeads * HeadDim, HiddenSize),
        new("k_proj", NumKeyValueHeads * HeadDim, HiddenSize),
        new("v_proj", NumKeyValueHeads * HeadDim, HiddenSize),
        new("o_proj", HiddenSize, NumAttentionHeads * HeadDim),
        new("gate_proj", IntermediateSize, HiddenSize),
        new("up_proj", IntermediateSize, HiddenSize),
        new("down_proj", HiddenSize, IntermediateSize),
    ];

    /// <summary>Weights of the targeted linear layers of all decoder layers (what LoQT quantizes).</summary>
    public long LinearParameters => NumHiddenLayers * LayerLinears.Sum(l => l.Elements);

    /// <summary><c>embed_tokens</c>: vocab × hidden.</summary>
    public long EmbeddingParameters => (long)VocabSize * HiddenSize;

    /// <summary><c>lm_head</c>: vocab × hidden, or none when tied to the embedding.</summary>
    public long LmHeadParameters => TieWordEmbeddings ? 0 : (long)VocabSize * HiddenSize;

    /// <summary>Two RMSNorm weights per decoder layer and the final norm.</summary>
    public long NormParameters => (2L * NumHiddenLayers + 1) * HiddenSize;

    /// <summary>Biases of the linear layers when <c>attention_bias</c> / <c>mlp_bias</c> are set.</summary>
    public long BiasParameters => NumHiddenLayers * LayerLinears.Where(HasBias).Sum(l => (long)l.Out);

    /// <summary>Everything that is not a targeted linear weight: embeddings, lm_head, norms, biases.</summary>
    public long NonLinearParameters => EmbeddingParameters + LmHeadParameters + NormParameters + BiasParameters;

    /// <summary>All parameters of the model.</summary>
    public long TotalParameters => LinearParameters + NonLinearParameters;

    /// <summary>Reads the dimensions from <c>config.json</c> text.</summary>
    /// <param name="json">The config text.</param>
    /// <param name="source">What the text came from (a preset name or a file), for error messages.</param>
    /// <exception cref="InvalidDataException">Not JSON, a required field is missing, or a value is out of range.</exception>
    public static ModelShape FromConfigJson(string json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not a valid config.json ({e.Message}).", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{source}: config.json must be a JSON object.");
            }

            var hidden = Required(root, "hidden_size", source);
            var heads = Required(root, "num_attention_heads", source);
            var kvHeads = Optional(root, "num_key_value_heads", source) ?? heads;
            var headDim = Optional(root, "head_dim", source) ?? hidden / heads;
            if (heads % kvHeads != 0)
            {
                throw new InvalidDataException($"{source}: num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kvHeads}).");
            }

            return new ModelShape(
                hidden,
                Required(root, "intermediate_size", source),
                Required(root, "num_hidden_layers", source),
                heads,
                kvHeads,
                headDim,
                Required(root, "vocab_size", source),
                // transformers' LlamaConfig default when the key is absent (the reference's own configs omit it).
                Optional(root, "max_position_embeddings", source) ?? 2048,
                Flag(root, "tie_word_embeddings", source),
                Flag(root, "attention_bias", source),
                Flag(root, "mlp_bias", source));
        }
    }

    /// <summary>Whether a linear of a decoder layer has a bias (<c>attention_bias</c> / <c>mlp_bias</c>).</summary>
    public bool HasBias(LinearShape linear) =>
        linear.Name is "q_proj" or "k_proj" or "v_proj" or "o_proj" ? AttentionBias : MlpBias;

    private static int Required(JsonElement root, string name, string source) =>
        Optional(root, name, source) ?? throw new InvalidDataException($"{source}: config.json has no '{name}'.");

    private static int? Optional(JsonElement root, string name, string source)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var number) || number <= 0)
        {
            throw new InvalidDataException($"{source}: '{name}' must be a positive integer (got {value.GetRawText()}).");
        }

        return number;
    }

    private static bool Flag(JsonElement root, string name, string source)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return false;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidDataException($"{source}: '{name}' must be true or false (got {value.GetRawText()})."),
        };
    }
}
