using System.Text.Json.Nodes;
using LoQT.Loqt;
using LoQT.Models.Llama;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// What a LoQT model's <c>loqt.json</c> says: the method, the (effective) layer options and the targeted layers, which
/// together rebuild its layers, and tell which tensors of <c>adapters.safetensors</c> belong to which layer.
/// </summary>
/// <param name="Method">The training method.</param>
/// <param name="Options">The layer options as the layers were built (for <c>loqt-nq</c>, W and P unquantized).</param>
/// <param name="TargetModules">The targeted linear layers, as suffixes of their names (see <see cref="LlamaLoadOptions.TargetModules"/>).</param>
public sealed record LoqtCheckpointMetadata(LoqtMethod Method, LoqtOptions Options, IReadOnlyList<string> TargetModules)
{
    /// <summary>Whether the method applies to the linear layer <paramref name="layerName"/> (e.g. <c>model.layers.0.mlp.up_proj</c>).</summary>
    /// <param name="layerName">The layer's module name.</param>
    public bool IsTargeted(string layerName) => new LlamaLoadOptions { TargetModules = TargetModules }.IsTargeted(layerName);

    /// <summary>Reads <c>loqt.json</c> of a LoQT model folder.</summary>
    /// <param name="directory">The checkpoint (or LoQT model) folder.</param>
    /// <exception cref="FileNotFoundException">There is no <c>loqt.json</c>: not a LoQT model.</exception>
    /// <exception cref="InvalidDataException">The file is malformed or lacks a field (named, with the file).</exception>
    public static LoqtCheckpointMetadata Read(string directory)
    {
        var metaPath = Path.Combine(directory, LoqtCheckpoint.LoqtConfigFileName);
        if (!File.Exists(metaPath))
        {
            throw new FileNotFoundException($"{directory} is not a LoQT checkpoint: {LoqtCheckpoint.LoqtConfigFileName} is missing.", metaPath);
        }

        JsonObject meta;
        try
        {
            meta = JsonNode.Parse(File.ReadAllText(metaPath))?.AsObject()
                ?? throw new InvalidDataException($"{metaPath}: not a JSON object.");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{metaPath}: not valid JSON: {e.Message}", e);
        }

        try
        {
            var method = LoqtMethodNames.Parse(Required(meta, "method", metaPath).GetValue<string>(), "method in " + metaPath);
            var svdKind = Enum.Parse<SvdKind>(Required(meta, "svd", metaPath).GetValue<string>());
            var options = new LoqtOptions
            {
                Rank = Required(meta, "rank", metaPath).GetValue<int>(),
                Alpha = Required(meta, "alpha", metaPath).GetValue<double>(),
                QuantizeWeight = Required(meta, "quantize_weight", metaPath).GetValue<bool>(),
                QuantizeProjection = Required(meta, "quantize_projection", metaPath).GetValue<bool>(),
                ErrorCompensationIterations = Required(meta, "ec_iterations", metaPath).GetValue<int>(),
                Svd = svdKind == SvdKind.Full ? SvdOptions.Full : SvdOptions.Randomized(
                    Required(meta, "svd_oversampling", metaPath).GetValue<int>(), Required(meta, "svd_power_iterations", metaPath).GetValue<int>()),
                BlockSize = Required(meta, "block_size", metaPath).GetValue<int>(),
                DoubleQuantization = Required(meta, "double_quant", metaPath).GetValue<bool>(),
                ComputeDType = Enum.Parse<ScalarType>(Required(meta, "compute_dtype", metaPath).GetValue<string>()),
                Seed = Required(meta, "seed", metaPath).GetValue<long>(),
            };
            var targets = Required(meta, "target_modules", metaPath).AsArray().Select(t => t!.GetValue<string>()).ToArray();
            return new LoqtCheckpointMetadata(method, options, targets);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"{metaPath}: {e.Message}", e);
        }
    }

    private static JsonNode Required(JsonObject meta, string key, string path) =>
        meta[key] ?? throw new InvalidDataException($"{path}: '{key}' is missing.");
}
