using System.Text.Json;
using System.Text.Json.Serialization;
using LoQT.Data;
using LoQT.SafeTensors;

namespace LoQT.Training;

/// <summary>
/// The trainer half of a checkpoint (<c>trainer_state.json</c> and <c>optimizer.safetensors</c>): where the run
/// stands, with what options, and the optimizer's moments. Nothing random is left to save: data order depends only on
/// (seed, epoch), and layers seed their own random draws from (seed, layer, re-initialization count).
/// </summary>
public sealed record TrainerState
{
    /// <summary>The optimizer state file.</summary>
    public const string OptimizerFileName = "optimizer.safetensors";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>Optimizer steps done.</summary>
    public long Step { get; init; }

    /// <summary>Training tokens seen (non-padding).</summary>
    public long TokensSeen { get; init; }

    /// <summary>Where the training data loader stands.</summary>
    public DataPosition DataPosition { get; init; }

    /// <summary>The run's options.</summary>
    public TrainingOptions Options { get; init; } = new();

    /// <summary>Training data the run reads.</summary>
    public string Dataset { get; init; } = "";

    /// <summary>Validation data, if any.</summary>
    public string? EvalDataset { get; init; }

    /// <summary>The model the run started from (a directory, or the preset/config for pretraining).</summary>
    public string? BaseModel { get; init; }

    /// <summary>Loss of the last step.</summary>
    public double? LastLoss { get; init; }

    /// <summary>Last validation loss.</summary>
    public double? LastEvalLoss { get; init; }

    /// <summary>The optimizer's scalar state (step counts, …).</summary>
    public Dictionary<string, double> OptimizerScalars { get; init; } = [];

    /// <summary>Writes <c>trainer_state.json</c> and the optimizer tensors into a checkpoint folder.</summary>
    public void Save(string directory, OptimizerState optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        using (var writer = new SafeTensorsWriter(Path.Combine(directory, OptimizerFileName)))
        {
            foreach (var (name, tensor) in optimizer.Tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
            {
                writer.Add(name, tensor);
            }

            writer.Complete();
        }

        var withScalars = this with { OptimizerScalars = new Dictionary<string, double>(optimizer.Scalars) };
        File.WriteAllText(Path.Combine(directory, CheckpointDirectory.TrainerStateFileName), JsonSerializer.Serialize(withScalars, Json));
    }

    /// <summary>Reads <c>trainer_state.json</c> of a checkpoint folder.</summary>
    public static TrainerState Load(string directory)
    {
        var path = Path.Combine(directory, CheckpointDirectory.TrainerStateFileName);
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path}: empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Reads the optimizer state of a checkpoint folder (tensors from <c>optimizer.safetensors</c>, scalars from this record).</summary>
    public OptimizerState LoadOptimizerState(string directory)
    {
        var state = new OptimizerState();
        using var file = SafeTensorsFile.Open(Path.Combine(directory, OptimizerFileName));
        foreach (var info in file.Tensors)
        {
            state.Tensors[info.Name] = file.ReadTensor(info.Name);
        }

        foreach (var (key, value) in OptimizerScalars)
        {
            state.Scalars[key] = value;
        }

        return state;
    }
}
