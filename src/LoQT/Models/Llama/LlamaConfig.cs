using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.IO;

namespace LoQT.Models.Llama;

/// <summary>
/// A Hugging Face Llama <c>config.json</c> (<c>LlamaConfig</c> in transformers): the model's shape and numerics.
/// Fields missing from the file take transformers' defaults; fields this class does not model are kept and
/// written back by <see cref="ToJson"/>.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>The file name Hugging Face uses.</summary>
    public const string FileName = "config.json";

    /// <summary>The <c>model_type</c> this implementation runs.</summary>
    public const string ModelType = "llama";

    /// <summary>The <c>architectures</c> entry this implementation runs.</summary>
    public const string Architecture = "LlamaForCausalLM";

    private static readonly HashSet<string> KnownKeys = new(StringComparer.Ordinal)
    {
        "architectures", "model_type", "hidden_act", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
        "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "tie_word_embeddings", "attention_bias",
        "mlp_bias", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype", "dtype", "initializer_range",
    };

    private readonly int? _headDim;
    private readonly int? _numKeyValueHeads;

    /// <summary>Width of the residual stream (<c>hidden_size</c>).</summary>
    public int HiddenSize { get; init; } = 4096;

    /// <summary>Width of the SwiGLU MLP (<c>intermediate_size</c>).</summary>
    public int IntermediateSize { get; init; } = 11008;

    /// <summary>Decoder layers (<c>num_hidden_layers</c>).</summary>
    public int NumHiddenLayers { get; init; } = 32;

    /// <summary>Query heads (<c>num_attention_heads</c>).</summary>
    public int NumAttentionHeads { get; init; } = 32;

    /// <summary>Key/value heads (<c>num_key_value_heads</c>; grouped-query attention when fewer than the query heads). Defaults to <see cref="NumAttentionHeads"/>.</summary>
    public int NumKeyValueHeads
    {
        get => _numKeyValueHeads ?? NumAttentionHeads;
        init => _numKeyValueHeads = value;
    }

    /// <summary>Width of one attention head (<c>head_dim</c>). Defaults to <see cref="HiddenSize"/> ÷ <see cref="NumAttentionHeads"/>.</summary>
    public int HeadDim
    {
        get => _headDim ?? (NumAttentionHeads > 0 ? HiddenSize / NumAttentionHeads : 0);
        init => _headDim = value;
    }

    /// <summary>Token ids (<c>vocab_size</c>).</summary>
    public int VocabSize { get; init; } = 32000;

    /// <summary>Longest context the model was trained for (<c>max_position_embeddings</c>).</summary>
    public int MaxPositionEmbeddings { get; init; } = 2048;

    /// <summary>The RMSNorm epsilon (<c>rms_norm_eps</c>).</summary>
    public double RmsNormEps { get; init; } = 1e-6;

    /// <summary>The RoPE base (<c>rope_theta</c>).</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>RoPE frequency scaling (<c>rope_scaling</c>), or <c>null</c> for none.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>Whether the output head shares the token embedding matrix (<c>tie_word_embeddings</c>).</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Whether q/k/v/o projections have biases (<c>attention_bias</c>).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>Whether gate/up/down projections have biases (<c>mlp_bias</c>).</summary>
    public bool MlpBias { get; init; }

    /// <summary>Beginning-of-sequence id (<c>bos_token_id</c>), or <c>null</c>.</summary>
    public int? BosTokenId { get; init; } = 1;

    /// <summary>End-of-sequence ids (<c>eos_token_id</c>, a number or a list; Llama 3.1 has several). Empty when unset.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [2];

    /// <summary>Padding id (<c>pad_token_id</c>), or <c>null</c>. Negative values count from the end of the vocabulary, as in PyTorch.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>The dtype the weights were saved in (<c>torch_dtype</c>: <c>float32</c>, <c>bfloat16</c>, <c>float16</c>), or <c>null</c>.</summary>
    public string? TorchDType { get; init; }

    /// <summary>Standard deviation of the normal initialisation of linear and embedding weights (<c>initializer_range</c>).</summary>
    public double InitializerRange { get; init; } = 0.02;

    /// <summary>Fields of the file this class does not model (for example <c>quantization_config</c>), written back unchanged.</summary>
    public JsonObject AdditionalProperties { get; init; } = [];

    /// <summary>Reads <c>config.json</c> from a model folder, or a config file given directly.</summary>
    /// <param name="pathOrDirectory">A folder holding <c>config.json</c>, or the file itself.</param>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON or values, or not a Llama model; the message names the file.</exception>
    /// <exception cref="NotSupportedException">An architecture, activation or RoPE scaling this implementation does not run.</exception>
    public static LlamaConfig Load(string pathOrDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrDirectory);
        var path = Directory.Exists(pathOrDirectory) ? Path.Combine(pathOrDirectory, FileName) : pathOrDirectory;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no model config at {Path.GetFullPath(path)}", path);
        }

        return Parse(File.ReadAllText(path), Path.GetFullPath(path));
    }

    /// <summary>Parses the text of a <c>config.json</c>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="source">What to call the text in error messages (a file path).</param>
    /// <exception cref="InvalidDataException">Malformed JSON or values, or not a Llama model.</exception>
    /// <exception cref="NotSupportedException">An architecture, activation or RoPE scaling this implementation does not run.</exception>
    public static LlamaConfig Parse(string json, string source = "config.json")
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException($"{source}: the config is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON: {e.Message}", e);
        }

        var reader = new ConfigReader(root, source);
        CheckArchitecture(reader, root, source);
        var activation = reader.String("hidden_act");
        if (activation is not null and not "silu")
        {
            throw new NotSupportedException($"{source}: hidden_act '{activation}' is not supported; Llama uses 'silu'.");
        }

        var ropeParameters = root["rope_parameters"] as JsonObject;
        var config = new LlamaConfig
        {
            HiddenSize = reader.Int("hidden_size") ?? 4096,
            IntermediateSize = reader.Int("intermediate_size") ?? 11008,
            NumHiddenLayers = reader.Int("num_hidden_layers") ?? 32,
            NumAttentionHeads = reader.Int("num_attention_heads") ?? 32,
            VocabSize = reader.Int("vocab_size") ?? 32000,
            MaxPositionEmbeddings = reader.Int("max_position_embeddings") ?? 2048,
            RmsNormEps = reader.Double("rms_norm_eps") ?? 1e-6,
            RopeTheta = reader.Double("rope_theta") ?? (ropeParameters is null ? null : new ConfigReader(ropeParameters, source + " rope_parameters").Double("rope_theta")) ?? 10000.0,
            RopeScaling = ParseRopeScaling(root["rope_scaling"] as JsonObject ?? ropeParameters, root["rope_scaling"] is null && ropeParameters is not null ? "rope_parameters" : "rope_scaling", source),
            TieWordEmbeddings = reader.Bool("tie_word_embeddings") ?? false,
            AttentionBias = reader.Bool("attention_bias") ?? false,
            MlpBias = reader.Bool("mlp_bias") ?? false,
            BosTokenId = root.ContainsKey("bos_token_id") ? reader.Int("bos_token_id") : 1,
            EosTokenIds = root.ContainsKey("eos_token_id") ? reader.IntOrIntList("eos_token_id") : [2],
            PadTokenId = reader.Int("pad_token_id"),
            TorchDType = reader.String("torch_dtype") ?? reader.String("dtype"),
            InitializerRange = reader.Double("initializer_range") ?? 0.02,
            AdditionalProperties = new JsonObject(root.Where(p => !KnownKeys.Contains(p.Key)).Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))),
        };
        if (reader.Int("num_key_value_heads") is { } kvHeads)
        {
            config = config with { NumKeyValueHeads = kvHeads };
        }

        if (reader.Int("head_dim") is { } headDim)
        {
            config = config with { HeadDim = headDim };
        }

        config.Validate(source);
        return config;
    }

    /// <summary>The config as <c>config.json</c> text (indented, invariant numbers), including <see cref="AdditionalProperties"/>.</summary>
    public string ToJson()
    {
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture),
            ["model_type"] = ModelType,
            ["hidden_act"] = "silu",
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["head_dim"] = HeadDim,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["rope_scaling"] = RopeScaling is null ? null : RopeScalingJson(RopeScaling),
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = AttentionBias,
            ["mlp_bias"] = MlpBias,
            ["bos_token_id"] = BosTokenId,
            ["eos_token_id"] = EosTokenIds.Count == 1 ? JsonValue.Create(EosTokenIds[0]) : new JsonArray(EosTokenIds.Select(id => (JsonNode?)id).ToArray()),
            ["pad_token_id"] = PadTokenId,
            ["initializer_range"] = InitializerRange,
        };
        if (TorchDType is not null)
        {
            root["torch_dtype"] = TorchDType;
        }

        foreach (var (key, value) in AdditionalProperties)
        {
            root[key] = value?.DeepClone();
        }

        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Writes <c>config.json</c> into <paramref name="directory"/> (created if needed) atomically: a temporary file renamed into place.</summary>
    /// <param name="directory">The model folder.</param>
    /// <returns>The path written.</returns>
    public string Save(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        AtomicFile.WriteAllText(path, ToJson() + "\n");
        return path;
    }

    /// <summary>
    /// The tensors a Hugging Face checkpoint of this config holds (<c>model.embed_tokens.weight</c>, each layer's norms,
    /// projections and biases, <c>model.norm.weight</c>, <c>lm_head.weight</c> unless tied), with their shapes, in the
    /// order <see cref="LlamaForCausalLM.Load"/> reads them.
    /// </summary>
    public IReadOnlyList<LlamaCheckpointTensor> CheckpointTensors() =>
        LlamaWeightLayout.Expected(this).Select(t => new LlamaCheckpointTensor(t.Name, t.Shape)).ToArray();

    /// <summary>Checks that the shape is one the model can be built with.</summary>
    /// <param name="source">What to call the config in the message.</param>
    /// <exception cref="InvalidDataException">A size is not positive, or heads do not divide as attention needs.</exception>
    public void Validate(string source = "config.json")
    {
        void Positive(string name, double value)
        {
            if (!(value > 0))
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{source}: {name} must be positive, got {value}"));
            }
        }

        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", NumKeyValueHeads);
        Positive("head_dim", HeadDim);
        Positive("vocab_size", VocabSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        Positive("rms_norm_eps", RmsNormEps);
        Positive("rope_theta", RopeTheta);
        if (_headDim is null && HiddenSize % NumAttentionHeads != 0)
        {
            throw new InvalidDataException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads} (and no head_dim is given)");
        }

        if (HeadDim % 2 != 0)
        {
            throw new InvalidDataException($"{source}: head_dim {HeadDim} must be even for rotary embeddings");
        }

        if (NumAttentionHeads % NumKeyValueHeads != 0)
        {
            throw new InvalidDataException($"{source}: num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {NumKeyValueHeads}");
        }

        if (PadTokenId is { } pad && (pad >= VocabSize || pad < -VocabSize))
        {
            throw new InvalidDataException($"{source}: pad_token_id {pad} is outside the vocabulary of {VocabSize}");
        }
    }

    private static void CheckArchitecture(ConfigReader reader, JsonObject root, string source)
    {
        var modelType = reader.String("model_type");
        if (modelType is not null && modelType != ModelType)
        {
            throw new NotSupportedException($"{source}: model_type '{modelType}' is not supported; this implementation runs model_type '{ModelType}' ({Architecture}).");
        }

        if (root["architectures"] is JsonArray architectures)
        {
            var names = architectures.Select(a => a?.GetValueKind() == JsonValueKind.String ? a.GetValue<string>() : a?.ToJsonString()).ToArray();
            if (names.Length > 0 && !names.Contains(Architecture))
            {
                throw new NotSupportedException($"{source}: architectures [{string.Join(", ", names)}] are not supported; this implementation runs {Architecture}.");
            }
        }
        else if (root.ContainsKey("architectures") && root["architectures"] is not null)
        {
            throw new InvalidDataException($"{source}: architectures must be a list of names");
        }
    }

    private static RopeScaling? ParseRopeScaling(JsonObject? node, string key, string source)
    {
        if (node is null)
        {
            return null;
        }

        var reader = new ConfigReader(node, $"{source} {key}");
        var type = reader.String("rope_type") ?? reader.String("type")
            ?? throw new InvalidDataException($"{source}: {key} has neither rope_type nor type");
        if (type == "default")
        {
            return null;
        }

        if (!RopeScaling.SupportedTypes.Contains(type))
        {
            throw new NotSupportedException($"{source}: {key} type '{type}' is not supported; supported: default, {string.Join(", ", RopeScaling.SupportedTypes)}.");
        }

        var factor = reader.Double("factor") ?? throw new InvalidDataException($"{source}: {key} of type '{type}' needs a factor");
        if (!(factor > 0))
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{source}: {key} factor must be positive, got {factor}"));
        }

        if (type == RopeScaling.Linear)
        {
            return new RopeScaling(type, factor);
        }

        var scaling = new RopeScaling(
            type,
            factor,
            reader.Double("low_freq_factor") ?? throw new InvalidDataException($"{source}: {key} of type 'llama3' needs low_freq_factor"),
            reader.Double("high_freq_factor") ?? throw new InvalidDataException($"{source}: {key} of type 'llama3' needs high_freq_factor"),
            reader.Int("original_max_position_embeddings") ?? throw new InvalidDataException($"{source}: {key} of type 'llama3' needs original_max_position_embeddings"));
        if (!(scaling.HighFreqFactor > scaling.LowFreqFactor) || scaling.OriginalMaxPositionEmbeddings <= 0)
        {
            throw new InvalidDataException($"{source}: {key} needs high_freq_factor > low_freq_factor and a positive original_max_position_embeddings");
        }

        return scaling;
    }

    private static JsonObject RopeScalingJson(RopeScaling scaling) => scaling.Type == RopeScaling.Linear
        ? new JsonObject { ["rope_type"] = scaling.Type, ["factor"] = scaling.Factor }
        : new JsonObject
        {
            ["rope_type"] = scaling.Type,
            ["factor"] = scaling.Factor,
            ["low_freq_factor"] = scaling.LowFreqFactor,
            ["high_freq_factor"] = scaling.HighFreqFactor,
            ["original_max_position_embeddings"] = scaling.OriginalMaxPositionEmbeddings,
        };

    /// <summary>Typed reads of optional fields with errors that name the file and the field.</summary>
    private sealed class ConfigReader(JsonObject root, string source)
    {
        public string? String(string key) => root[key] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            var other => throw Invalid(key, "a string", other),
        };

        public bool? Bool(string key) => root[key] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
            var other => throw Invalid(key, "true or false", other),
        };

        public double? Double(string key) => root[key] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
            var other => throw Invalid(key, "a number", other),
        };

        public int? Int(string key) => root[key] switch
        {
            null => null,
            var node => ToInt(key, node),
        };

        public IReadOnlyList<int> IntOrIntList(string key) => root[key] switch
        {
            null => [],
            JsonArray array => array.Select(n => n is null ? throw Invalid(key, "a list of integers", array) : ToInt(key, n)).ToArray(),
            var node => [ToInt(key, node)],
        };

        private int ToInt(string key, JsonNode node)
        {
            if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
            {
                var d = v.GetValue<double>();
                if (d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue)
                {
                    return (int)d;
                }
            }

            throw Invalid(key, "an integer", node);
        }

        private InvalidDataException Invalid(string key, string expected, JsonNode? got) =>
            new($"{source}: {key} must be {expected}, got {got?.ToJsonString() ?? "null"}");
    }
}
