using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Export;

/// <summary>The config.json of an export: the checkpoint's, with the dtype and quantization of what was written.</summary>
internal static class ExportedConfig
{
    /// <summary>
    /// The modules an NF4 export leaves unquantized, for <c>llm_int8_skip_modules</c>. transformers replaces its default
    /// skips (the output embedding) by this list when one is given, so <c>lm_head</c> must be named, also when it is tied
    /// to the embedding (an untied copy would otherwise become a <c>Linear4bit</c> waiting for 4-bit weights).
    /// </summary>
    public static IReadOnlyList<string> SkipModules { get; } = ["lm_head"];

    /// <summary>
    /// A copy of <paramref name="checkpointConfig"/> with <c>torch_dtype</c> (and <c>dtype</c>, the newer name, when
    /// present) set to the dtype of the unquantized tensors, any earlier <c>quantization_config</c> removed, and
    /// <paramref name="quantization"/> added when given.
    /// </summary>
    /// <param name="checkpointConfig">The checkpoint's config.json.</param>
    /// <param name="tensorDType">The dtype the dense tensors are stored in.</param>
    /// <param name="quantization">The bitsandbytes block for an NF4 export; null for a full-precision one.</param>
    public static JsonObject Build(JsonObject checkpointConfig, ScalarType tensorDType, QuantizationConfig? quantization)
    {
        ArgumentNullException.ThrowIfNull(checkpointConfig);
        var config = (JsonObject)checkpointConfig.DeepClone();
        config.Remove(QuantizationConfig.Key);

        // transformers takes torch_dtype="auto" from here, and bitsandbytes loading defaults to float16 without it.
        var name = BnbQuantState.TorchDTypeName(tensorDType);
        config["torch_dtype"] = name;
        if (config.ContainsKey("dtype"))
        {
            config["dtype"] = name;
        }

        if (quantization is not null)
        {
            config[QuantizationConfig.Key] = quantization.ToJson();
        }

        return config;
    }

    /// <summary>The text written to config.json: indented with two spaces, as transformers writes it, and a final newline.</summary>
    /// <param name="config">The config.</param>
    public static string ToText(JsonObject config) =>
        config.ToJsonString(new JsonSerializerOptions { WriteIndented = true, IndentSize = 2 }) + "\n";
}
