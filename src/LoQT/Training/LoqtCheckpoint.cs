using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Quantization;
using LoQT.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// The model half of a training checkpoint: what rebuilds a model with its adapters exactly as it was.
/// </summary>
/// <remarks>
/// <para>Files:</para>
/// <list type="bullet">
/// <item><c>config.json</c>: the model's Hugging Face config.</item>
/// <item><c>model.safetensors</c>: the base weights under Hugging Face names — each adapted layer's frozen W
/// (bitsandbytes NF4 keys when quantized, dense otherwise), trainable dense weights, embeddings, norms, biases — so
/// the Llama loader reads it like any checkpoint.</item>
/// <item><c>adapters.safetensors</c>: per layer the frozen projection (<c>{layer}.projection</c>, NF4 or dense) and
/// the trainable low-rank factors (<c>{layer}.adapter</c>, <c>{layer}.lora_A</c>, …) as the modules name them.</item>
/// <item><c>loqt.json</c>: the method, layer options and targets that rebuild the same layers.</item>
/// </list>
/// <para>
/// NF4 weights are stored as they are and come back through <see cref="Nf4Tensor.Dequantize"/> and re-quantization,
/// which reproduces the same codes and absmax (every block's absmax element maps to code ±1, so it is kept exactly).
/// </para>
/// </remarks>
public static class LoqtCheckpoint
{
    /// <summary>The model file.</summary>
    public const string ModelFileName = "model.safetensors";

    /// <summary>The adapter file.</summary>
    public const string AdaptersFileName = "adapters.safetensors";

    /// <summary>The file naming method and layer options.</summary>
    public const string LoqtConfigFileName = "loqt.json";

    /// <summary>Tokenizer and generation files carried along with a model.</summary>
    public static IReadOnlyList<string> CompanionFiles { get; } =
    [
        "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
    ];

    /// <summary>Whether a directory holds a LoQT model (as opposed to a plain Hugging Face checkpoint).</summary>
    public static bool IsLoqtModel(string directory) => File.Exists(Path.Combine(directory, LoqtConfigFileName));

    /// <summary>Writes the model, its adapters and how to rebuild them into <paramref name="directory"/>.</summary>
    public static void Save(string directory, LlamaForCausalLM model, LoqtMethod method, LoqtOptions layerOptions, IReadOnlyList<string> targetModules)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(layerOptions);
        Directory.CreateDirectory(directory);
        model.Config.Save(directory);
        var meta = new JsonObject
        {
            ["format"] = "loqt-checkpoint",
            ["version"] = 1,
            ["method"] = method.ToName(),
            ["rank"] = layerOptions.Rank,
            ["alpha"] = layerOptions.Alpha,
            ["quantize_weight"] = layerOptions.QuantizeWeight,
            ["quantize_projection"] = layerOptions.QuantizeProjection,
            ["ec_iterations"] = layerOptions.ErrorCompensationIterations,
            ["svd"] = layerOptions.Svd.Kind.ToString(),
            ["svd_oversampling"] = layerOptions.Svd.Oversampling,
            ["svd_power_iterations"] = layerOptions.Svd.PowerIterations,
            ["block_size"] = layerOptions.BlockSize,
            ["double_quant"] = layerOptions.DoubleQuantization,
            ["compute_dtype"] = layerOptions.ComputeDType.ToString(),
            ["seed"] = layerOptions.Seed,
            ["target_modules"] = new JsonArray(targetModules.Select(t => (JsonNode)t!).ToArray()),
        };
        File.WriteAllText(Path.Combine(directory, LoqtConfigFileName), meta.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        var linearNames = model.LinearLayers.Select(l => l.Key).ToHashSet(StringComparer.Ordinal);
        using (var weights = new SafeTensorsWriter(Path.Combine(directory, ModelFileName)))
        using (var adapters = new SafeTensorsWriter(Path.Combine(directory, AdaptersFileName)))
        {
            foreach (var (name, layer) in model.LinearLayers)
            {
                switch (layer)
                {
                    case LoqtLinear loqt:
                        WriteFrozen(weights, name + ".weight", loqt.Weight);
                        WriteFrozen(adapters, name + ".projection", loqt.Projection);
                        break;
                    case LoraLinear lora:
                        WriteFrozen(weights, name + ".weight", lora.Weight);
                        break;
                }
            }

            foreach (var (name, parameter) in model.named_parameters())
            {
                var owner = name[..Math.Max(0, name.LastIndexOf('.'))];
                var leaf = name[(name.LastIndexOf('.') + 1)..];
                var isAdapter = linearNames.Contains(owner) && leaf is not ("weight" or "bias");
                (isAdapter ? adapters : weights).Add(name, parameter.detach());
            }

            weights.Complete();
            adapters.Complete();
        }
    }

    /// <summary>
    /// Rebuilds a model saved by <see cref="Save"/>: the same layers, with W, P and the trainable factors as saved.
    /// </summary>
    /// <param name="directory">The checkpoint (or exported LoQT model) folder.</param>
    /// <param name="device">Where the model lives; null for the CPU.</param>
    /// <param name="trainable">Whether untargeted parameters (embeddings, norms, lm_head) train, as in a training run.</param>
    /// <returns>The model and the factory that made its layers (for arming re-initializations).</returns>
    public static (LlamaForCausalLM Model, LoqtLinearFactory Factory, IReadOnlyList<string> TargetModules) Load(string directory, Device? device = null, bool trainable = true)
    {
        var meta = LoqtCheckpointMetadata.Read(directory);
        var (model, factory) = Build(directory, meta.Method, meta.Options, meta.TargetModules, device, trainable);
        RestoreAdapters(directory, model);
        return (model, factory, meta.TargetModules);
    }

    /// <summary>Loads a Hugging Face checkpoint (dense or bitsandbytes NF4) into the layers of a training method.</summary>
    public static (LlamaForCausalLM Model, LoqtLinearFactory Factory) Build(
        string directory, LoqtMethod method, LoqtOptions options, IReadOnlyList<string> targetModules, Device? device = null, bool trainable = true,
        IProgress<LlamaLoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var (loadOptions, factory) = LoadOptionsFor(method, options, targetModules, device, trainable);
        return (LlamaForCausalLM.Load(directory, loadOptions, progress, cancellationToken), factory);
    }

    /// <summary>Initializes a model of <paramref name="config"/> at random, layer by layer, into the layers of a training method.</summary>
    public static (LlamaForCausalLM Model, LoqtLinearFactory Factory) CreateRandom(
        LlamaConfig config, LoqtMethod method, LoqtOptions options, IReadOnlyList<string> targetModules, long seed, Device? device = null)
    {
        var (loadOptions, factory) = LoadOptionsFor(method, options, targetModules, device, trainable: true);
        return (LlamaForCausalLM.CreateRandom(config, loadOptions, seed), factory);
    }

    /// <summary>Copies the tokenizer and generation files of <paramref name="source"/> (those it has) into <paramref name="target"/>.</summary>
    public static void CopyCompanionFiles(string source, string target)
    {
        foreach (var file in CompanionFiles)
        {
            var from = Path.Combine(source, file);
            if (File.Exists(from))
            {
                File.Copy(from, Path.Combine(target, file), overwrite: true);
            }
        }
    }

    private static (LlamaLoadOptions Options, LoqtLinearFactory Factory) LoadOptionsFor(
        LoqtMethod method, LoqtOptions options, IReadOnlyList<string> targetModules, Device? device, bool trainable)
    {
        var loadOptions = new LlamaLoadOptions { ComputeDType = options.ComputeDType, Device = device, TargetModules = targetModules, TrainUntargeted = trainable };
        var factory = new LoqtLinearFactory(method, options, loadOptions.IsTargeted);
        var adapter = new LlamaLinearFactoryAdapter(factory);
        return (loadOptions with { LinearFactory = adapter, UntargetedLinearFactory = adapter }, factory);
    }

    private static void RestoreAdapters(string directory, LlamaForCausalLM model)
    {
        using var adapters = SafeTensorsFile.Open(Path.Combine(directory, AdaptersFileName));
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var info in adapters.Tensors)
        {
            if (BnbNf4Format.IsQuantStateKey(info.Name) || info.Name.EndsWith(".projection", StringComparison.Ordinal))
            {
                continue;
            }

            if (!parameters.TryGetValue(info.Name, out var parameter))
            {
                throw new InvalidDataException($"{adapters.Path}: tensor '{info.Name}' belongs to no parameter of the model.");
            }

            using var saved = adapters.ReadTensor(info.Name);
            if (!saved.shape.SequenceEqual(parameter.shape))
            {
                throw new InvalidDataException($"{adapters.Path}: '{info.Name}' has shape [{string.Join(", ", saved.shape)}], the model needs [{string.Join(", ", parameter.shape)}].");
            }

            parameter.copy_(saved);
        }

        foreach (var (name, layer) in model.LinearLayers)
        {
            if (layer is LoqtLinear loqt)
            {
                var key = name + ".projection";
                var projection = BnbNf4Format.IsQuantized(adapters, key)
                    ? FrozenMatrix.FromQuantized(BnbNf4Format.Read(adapters, key))
                    : FrozenMatrix.FromDense(adapters.ReadTensor(key), loqt.Options.ComputeDType);
                loqt.RestoreProjection(projection);
            }
        }
    }

    private static void WriteFrozen(SafeTensorsWriter writer, string name, FrozenMatrix matrix)
    {
        if (matrix.Quantized is { } quantized)
        {
            BnbNf4Format.Write(writer, name, quantized);
        }
        else
        {
            writer.Add(name, matrix.Dense!);
        }
    }

    /// <summary>Presents a <see cref="LoqtLinearFactory"/> as the Llama model's layer factory.</summary>
    private sealed class LlamaLinearFactoryAdapter(LoqtLinearFactory factory) : ILinearFactory
    {
        public nn.Module<Tensor, Tensor> Create(LinearLayerSpec spec, Tensor weight, Tensor? bias) =>
            factory.Create(spec.Name, weight, bias, spec.ComputeDType, spec.Device);

        public nn.Module<Tensor, Tensor> CreateQuantized(LinearLayerSpec spec, Nf4Tensor weight, Tensor? bias)
        {
            // Dequantize and let the layer quantize again: NF4 of an NF4-dequantized matrix gives back the same codes.
            using (weight)
            {
                using var dense = weight.Dequantize(ScalarType.Float32);
                return factory.Create(spec.Name, dense, bias, spec.ComputeDType, spec.Device);
            }
        }
    }
}
