using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.IO;

namespace LoQT.Quantization;

/// <summary>
/// The <c>quantization_config</c> block of a Hugging Face <c>config.json</c> for a bitsandbytes 4-bit checkpoint, as
/// transformers' <c>BitsAndBytesConfig</c> writes it (so transformers loads the weights as <c>Linear4bit</c>).
/// </summary>
public sealed record QuantizationConfig
{
    /// <summary>The key of the block in config.json.</summary>
    public const string Key = "quantization_config";

    /// <summary>The <c>quant_method</c> of bitsandbytes checkpoints.</summary>
    public const string BitsAndBytes = "bitsandbytes";

    /// <summary><c>bnb_4bit_quant_type</c>: "nf4".</summary>
    public string QuantType { get; init; } = "nf4";

    /// <summary><c>bnb_4bit_use_double_quant</c>: whether the absmax values are 8-bit quantized.</summary>
    public bool UseDoubleQuant { get; init; }

    /// <summary><c>bnb_4bit_compute_dtype</c>: the dtype matmuls run in ("bfloat16", "float16", "float32").</summary>
    public string ComputeDType { get; init; } = "bfloat16";

    /// <summary><c>llm_int8_skip_modules</c>: modules left unquantized (e.g. <c>lm_head</c>); null writes JSON null.</summary>
    public IReadOnlyList<string>? SkipModules { get; init; }

    /// <summary><c>bnb_4bit_quant_storage</c>: the element type of the packed tensors ("uint8").</summary>
    public string QuantStorage { get; init; } = "uint8";

    /// <summary>The block, keys sorted as transformers writes them.</summary>
    public JsonObject ToJson() => new()
    {
        ["_load_in_4bit"] = true,
        ["_load_in_8bit"] = false,
        ["bnb_4bit_compute_dtype"] = ComputeDType,
        ["bnb_4bit_quant_storage"] = QuantStorage,
        ["bnb_4bit_quant_type"] = QuantType,
        ["bnb_4bit_use_double_quant"] = UseDoubleQuant,
        ["llm_int8_enable_fp32_cpu_offload"] = false,
        ["llm_int8_has_fp16_weight"] = false,
        ["llm_int8_skip_modules"] = SkipModules is null ? null : new JsonArray(SkipModules.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray()),
        ["llm_int8_threshold"] = JsonNode.Parse("6.0"), // written as Python writes it, not "6"
        ["load_in_4bit"] = true,
        ["load_in_8bit"] = false,
        ["quant_method"] = BitsAndBytes,
    };

    /// <summary>Reads the block of a parsed config.json; null when there is none or it is not bitsandbytes 4-bit.</summary>
    /// <param name="config">The parsed config.json.</param>
    /// <exception cref="InvalidDataException">The block is there but malformed.</exception>
    public static QuantizationConfig? FromConfig(JsonObject config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config[Key] is not JsonObject block)
        {
            return null;
        }

        try
        {
            if ((string?)block["quant_method"] != BitsAndBytes || !((bool?)block["load_in_4bit"] ?? (bool?)block["_load_in_4bit"] ?? false))
            {
                return null;
            }

            return new QuantizationConfig
            {
                QuantType = (string?)block["bnb_4bit_quant_type"] ?? "fp4",
                UseDoubleQuant = (bool?)block["bnb_4bit_use_double_quant"] ?? false,
                ComputeDType = (string?)block["bnb_4bit_compute_dtype"] ?? "float32",
                QuantStorage = (string?)block["bnb_4bit_quant_storage"] ?? "uint8",
                SkipModules = block["llm_int8_skip_modules"] is JsonArray skip ? skip.Select(n => (string)n!).ToArray() : null,
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"the {Key} block is malformed: {e.Message}", e);
        }
    }

    /// <summary>Reads the block of a config.json file; null when there is none or it is not bitsandbytes 4-bit.</summary>
    /// <param name="configPath">The config.json path.</param>
    /// <exception cref="InvalidDataException">The file is not a JSON object, or the block is malformed; the message names the file.</exception>
    public static QuantizationConfig? ReadFromFile(string configPath)
    {
        var config = ReadObject(configPath);
        try
        {
            return FromConfig(config);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{configPath}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes <paramref name="targetPath"/> as a copy of the config.json at <paramref name="sourcePath"/> with this
    /// block set (replacing any earlier one), atomically (temporary file, then rename). Source and target may be the same.
    /// </summary>
    /// <param name="sourcePath">The config.json to copy.</param>
    /// <param name="targetPath">Where to write.</param>
    public void WriteIntoFile(string sourcePath, string targetPath)
    {
        var config = ReadObject(sourcePath);
        config[Key] = ToJson();
        AtomicFile.WriteAllText(targetPath, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 }) + "\n");
    }

    private static JsonObject ReadObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path} is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }
}
