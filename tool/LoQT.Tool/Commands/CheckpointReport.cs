using System.Text.Json.Nodes;
using LoQT.Quantization;
using LoQT.SafeTensors;

namespace LoQT.Tool.Commands;

/// <summary>What <c>loqt info</c> says about a checkpoint: its logical tensors (NF4 weights folded with their quant state), totals, quantization and config.</summary>
internal sealed record CheckpointReport(
    string Path,
    bool Sharded,
    IReadOnlyList<string> Files,
    long FileBytes,
    IReadOnlyDictionary<string, string> Metadata,
    IReadOnlyList<CheckpointReport.Tensor> Tensors,
    long Parameters,
    long TensorBytes,
    CheckpointReport.QuantizationSummary? Quantization,
    string? ConfigPath,
    JsonObject? Config)
{
    /// <summary>One logical tensor; for an NF4 weight, its original dtype and shape and the bytes of all its stored parts.</summary>
    internal sealed record Tensor(string Name, string DType, long[] Shape, long Parameters, long Bytes, Nf4Info? Nf4);

    internal sealed record Nf4Info(int BlockSize, bool DoubleQuant, string OriginalDType);

    internal sealed record QuantizationSummary(string Method, string Type, int Weights, long Parameters, IReadOnlyList<int> BlockSizes, bool DoubleQuant);

    /// <summary>The config.json keys worth a line in the summary, in the order shown.</summary>
    public static readonly string[] ConfigKeys =
    [
        "model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rope_theta", "rope_scaling",
        "tie_word_embeddings", "torch_dtype", "quantization_config",
    ];

    public static CheckpointReport Build(string path)
    {
        using var checkpoint = SafeTensorsCheckpoint.Open(path);
        var names = checkpoint.TensorNames;
        var infos = names.ToDictionary(n => n, checkpoint.GetInfo, StringComparer.Ordinal);
        var partsOf = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var name in names.Where(BnbNf4Format.IsQuantStateKey))
        {
            var owner = BnbNf4Format.WeightNameOf(name)!;
            partsOf[owner] = partsOf.GetValueOrDefault(owner) + infos[name].ByteLength;
        }

        var tensors = new List<Tensor>();
        foreach (var name in names.Where(n => !BnbNf4Format.IsQuantStateKey(n)))
        {
            var info = infos[name];
            if (BnbNf4Format.IsQuantized(checkpoint, name))
            {
                var state = BnbNf4Format.ReadQuantState(checkpoint, name);
                var count = state.Shape.Aggregate(1L, (a, b) => a * b);
                tensors.Add(new Tensor(name, "NF4", state.Shape, count, info.ByteLength + partsOf.GetValueOrDefault(name),
                    new Nf4Info(state.BlockSize, state.IsNested, state.DType)));
            }
            else
            {
                tensors.Add(new Tensor(name, info.DType.ToHeaderName(), info.Shape, info.ElementCount, info.ByteLength, null));
            }
        }

        var nf4 = tensors.Where(t => t.Nf4 is not null).ToArray();
        var quantization = nf4.Length == 0
            ? null
            : new QuantizationSummary("bitsandbytes", "nf4", nf4.Length, nf4.Sum(t => t.Parameters),
                nf4.Select(t => t.Nf4!.BlockSize).Distinct().Order().ToArray(), nf4.Any(t => t.Nf4!.DoubleQuant));

        var folder = System.IO.Path.GetDirectoryName(checkpoint.Path)!;
        var configPath = System.IO.Path.Combine(folder, CheckpointQuantizer.ConfigFileName);
        JsonObject? config = null;
        if (File.Exists(configPath))
        {
            try
            {
                config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
                    ?? throw new InvalidDataException($"{configPath} is not a JSON object");
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new InvalidDataException($"{configPath} is not valid JSON: {e.Message}", e);
            }
        }

        var files = checkpoint.Files;
        return new CheckpointReport(
            checkpoint.Path, checkpoint.IsSharded, files, files.Sum(f => new FileInfo(f).Length), checkpoint.Metadata, tensors,
            tensors.Sum(t => t.Parameters), infos.Values.Sum(i => i.ByteLength), quantization, config is null ? null : configPath, config);
    }

    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["path"] = Path,
            ["sharded"] = Sharded,
            ["files"] = new JsonArray(Files.Select(f => (JsonNode?)f).ToArray()),
            ["file_bytes"] = FileBytes,
            ["metadata"] = new JsonObject(Metadata.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value))),
            ["tensor_count"] = Tensors.Count,
            ["parameters"] = Parameters,
            ["tensor_bytes"] = TensorBytes,
            ["tensors"] = new JsonArray(Tensors.Select(t => (JsonNode?)new JsonObject
            {
                ["name"] = t.Name,
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode?)d).ToArray()),
                ["parameters"] = t.Parameters,
                ["bytes"] = t.Bytes,
                ["nf4"] = t.Nf4 is null ? null : new JsonObject
                {
                    ["block_size"] = t.Nf4.BlockSize,
                    ["double_quant"] = t.Nf4.DoubleQuant,
                    ["original_dtype"] = t.Nf4.OriginalDType,
                },
            }).ToArray()),
            ["quantization"] = Quantization is null ? null : new JsonObject
            {
                ["method"] = Quantization.Method,
                ["type"] = Quantization.Type,
                ["weights"] = Quantization.Weights,
                ["parameters"] = Quantization.Parameters,
                ["block_sizes"] = new JsonArray(Quantization.BlockSizes.Select(b => (JsonNode?)b).ToArray()),
                ["double_quant"] = Quantization.DoubleQuant,
            },
            ["config_path"] = ConfigPath,
            ["config"] = Config is null ? null : new JsonObject(ConfigKeys.Where(Config.ContainsKey).Select(k => KeyValuePair.Create(k, Config[k]?.DeepClone()))),
        };
        return json;
    }
}
