using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Quantization;
using LoQT.SafeTensors;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Export;

/// <summary>
/// A LoQT checkpoint opened for export: its config, <c>loqt.json</c> and (when present) <c>trainer_state.json</c>, and
/// its two tensor files read one tensor at a time by positioned reads, so that file pages never count toward resident
/// memory. Opening checks every tensor an export needs (names, dtypes, shapes) without reading any tensor data.
/// </summary>
internal sealed class LoqtCheckpointReader : IDisposable
{
    private const int MaxListed = 20;

    private readonly SafeTensorsCheckpoint model;
    private readonly SafeTensorsCheckpoint adapters;
    private readonly CheckpointTensorReader modelReader;
    private readonly CheckpointTensorReader adapterReader;

    private LoqtCheckpointReader(
        string directory, JsonObject configJson, LlamaConfig config, LoqtCheckpointMetadata metadata, TrainerState? trainerState,
        SafeTensorsCheckpoint model, SafeTensorsCheckpoint adapters)
    {
        Directory = directory;
        ConfigJson = configJson;
        Config = config;
        Metadata = metadata;
        TrainerState = trainerState;
        this.model = model;
        this.adapters = adapters;
        modelReader = new CheckpointTensorReader(model);
        adapterReader = new CheckpointTensorReader(adapters);
    }

    /// <summary>The checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>config.json as written (every key, including ones <see cref="LlamaConfig"/> does not model).</summary>
    public JsonObject ConfigJson { get; }

    /// <summary>The model's config.</summary>
    public LlamaConfig Config { get; }

    /// <summary>loqt.json: method, layer options, targets.</summary>
    public LoqtCheckpointMetadata Metadata { get; }

    /// <summary>trainer_state.json, or null for a LoQT model folder without one.</summary>
    public TrainerState? TrainerState { get; }

    /// <summary>The path of the model tensor file, for errors.</summary>
    public string ModelPath => model.Path;

    /// <summary>The path of the adapter tensor file, for errors.</summary>
    public string AdaptersPath => adapters.Path;

    /// <summary>Opens and checks a LoQT checkpoint folder.</summary>
    /// <param name="directory">The folder (holding loqt.json, config.json, model.safetensors, adapters.safetensors).</param>
    /// <exception cref="FileNotFoundException">A file is missing (named).</exception>
    /// <exception cref="InvalidDataException">A file is malformed, or tensors are missing or do not fit the config (every problem listed, naming file and tensor).</exception>
    public static LoqtCheckpointReader Open(string directory)
    {
        var metadata = LoqtCheckpointMetadata.Read(directory);
        var configPath = Path.Combine(directory, LlamaConfig.FileName);
        var config = LlamaConfig.Load(configPath);
        var configJson = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
            ?? throw new InvalidDataException($"{configPath} is not a JSON object");
        var trainerState = File.Exists(Path.Combine(directory, CheckpointDirectory.TrainerStateFileName)) ? TrainerState.Load(directory) : null;
        var modelPath = Path.Combine(directory, LoqtCheckpoint.ModelFileName);
        var adaptersPath = Path.Combine(directory, LoqtCheckpoint.AdaptersFileName);
        foreach (var required in new[] { modelPath, adaptersPath })
        {
            if (!File.Exists(required))
            {
                throw new FileNotFoundException($"{directory} is not a complete LoQT checkpoint: {Path.GetFileName(required)} is missing.", required);
            }
        }

        var model = SafeTensorsCheckpoint.Open(modelPath);
        SafeTensorsCheckpoint? adapters = null;
        try
        {
            CheckpointWeightSource.Validate(model, config, LlamaWeightLayout.Expected(config));
            adapters = SafeTensorsCheckpoint.Open(adaptersPath);
            ValidateAdapters(adapters, config, metadata);
            return new LoqtCheckpointReader(Path.GetFullPath(directory), configJson, config, metadata, trainerState, model, adapters);
        }
        catch
        {
            adapters?.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>Every tensor of the model config.json describes (Hugging Face names, shapes, roles), embedding first, <c>lm_head</c> last.</summary>
    public IEnumerable<LlamaTensorSpec> Tensors => LlamaWeightLayout.Expected(Config);

    /// <summary>A tensor of model.safetensors as a new CPU tensor of its stored dtype.</summary>
    /// <param name="name">The tensor's name.</param>
    public Tensor ReadModelTensor(string name) => modelReader.Read(name);

    /// <summary>A tensor of adapters.safetensors as a new CPU tensor of its stored dtype.</summary>
    /// <param name="name">The tensor's name.</param>
    public Tensor ReadAdapterTensor(string name) => adapterReader.Read(name);

    /// <summary>A frozen matrix of model.safetensors (a layer's W): NF4 as stored, or dense.</summary>
    /// <param name="name">The weight's name, e.g. <c>model.layers.0.mlp.up_proj.weight</c>.</param>
    public FrozenMatrix ReadModelMatrix(string name) => ReadMatrix(model, modelReader, name);

    /// <summary>A frozen matrix of adapters.safetensors (a layer's P): NF4 as stored, or dense.</summary>
    /// <param name="name">The tensor's name, e.g. <c>model.layers.0.mlp.up_proj.projection</c>.</param>
    public FrozenMatrix ReadAdapterMatrix(string name) => ReadMatrix(adapters, adapterReader, name);

    /// <summary>Whether model.safetensors stores <paramref name="name"/> as bitsandbytes NF4.</summary>
    /// <param name="name">The weight's name.</param>
    public bool IsQuantizedInModel(string name) => BnbNf4Format.IsQuantized(model, name);

    /// <inheritdoc/>
    public void Dispose()
    {
        modelReader.Dispose();
        adapterReader.Dispose();
        model.Dispose();
        adapters.Dispose();
    }

    /// <summary>The adapter tensors a targeted layer of the method needs: (name, shape) pairs.</summary>
    /// <param name="metadata">Method and options.</param>
    /// <param name="layer">The layer's module name.</param>
    /// <param name="inFeatures">Columns of its weight.</param>
    /// <param name="outFeatures">Rows of its weight.</param>
    public static IEnumerable<(string Name, long[] Shape)> AdapterTensorsOf(LoqtCheckpointMetadata metadata, string layer, long inFeatures, long outFeatures)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (!metadata.IsTargeted(layer))
        {
            yield break;
        }

        var rank = metadata.Options.Rank;
        switch (metadata.Method)
        {
            case LoqtMethod.Loqt or LoqtMethod.LoqtNoQuantization:
                var side = ProjectionSides.For(inFeatures, outFeatures);
                yield return (layer + ".projection", side.ProjectionShape(inFeatures, outFeatures, rank));
                yield return (layer + ".adapter", side.AdapterShape(inFeatures, outFeatures, rank));
                break;
            case LoqtMethod.Lora:
                yield return (layer + ".lora_A", [rank, inFeatures]);
                yield return (layer + ".lora_B", [outFeatures, rank]);
                break;
        }
    }

    private static FrozenMatrix ReadMatrix(SafeTensorsCheckpoint file, CheckpointTensorReader reader, string name)
    {
        if (BnbNf4Format.IsQuantized(file, name))
        {
            return FrozenMatrix.FromQuantized(BnbNf4Format.Read(file.Contains, reader.Read, file.Path, name));
        }

        using var dense = reader.Read(name);
        return FrozenMatrix.FromDense(dense, dense.dtype);
    }

    private static void ValidateAdapters(SafeTensorsCheckpoint adapters, LlamaConfig config, LoqtCheckpointMetadata metadata)
    {
        var problems = new List<string>();
        foreach (var spec in LlamaWeightLayout.Expected(config).Where(t => t.Role == LlamaTensorRole.LinearWeight))
        {
            var layer = spec.Name[..^".weight".Length];
            foreach (var (name, shape) in AdapterTensorsOf(metadata, layer, spec.Shape[1], spec.Shape[0]))
            {
                var shapeText = "[" + string.Join(", ", shape) + "]";
                if (!adapters.Contains(name))
                {
                    problems.Add($"missing tensor '{name}' (layer {layer} of method {metadata.Method.ToName()} needs shape {shapeText})");
                }
                else if (BnbNf4Format.IsQuantized(adapters, name))
                {
                    var state = BnbNf4Format.ReadQuantState(adapters, name);
                    if (!state.Shape.SequenceEqual(shape))
                    {
                        problems.Add($"tensor '{name}' has shape [{string.Join(", ", state.Shape)}] (bitsandbytes quant_state), but layer {layer} needs {shapeText}");
                    }
                }
                else
                {
                    var info = adapters.GetInfo(name);
                    if (info.DType is not (SafeTensorDType.F32 or SafeTensorDType.BF16 or SafeTensorDType.F16))
                    {
                        problems.Add($"tensor '{name}' is {info.DType.ToHeaderName()}, but a floating-point {shapeText} is needed");
                    }
                    else if (!info.Shape.SequenceEqual(shape))
                    {
                        problems.Add($"tensor '{name}' has shape {info.ShapeText}, but layer {layer} needs {shapeText}");
                    }
                }
            }
        }

        if (problems.Count > 0)
        {
            var message = new StringBuilder(string.Create(CultureInfo.InvariantCulture, $"{adapters.Path} does not hold the adapters of its checkpoint: "));
            message.AppendJoin("; ", problems.Take(MaxListed));
            if (problems.Count > MaxListed)
            {
                message.Append(CultureInfo.InvariantCulture, $"; and {problems.Count - MaxListed} more");
            }

            throw new InvalidDataException(message.ToString());
        }
    }
}
