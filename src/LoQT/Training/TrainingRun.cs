using LoQT.Models.Llama;
using TorchSharp;

namespace LoQT.Training;

/// <summary>What a training run starts from and where it writes.</summary>
public sealed record TrainingRun
{
    /// <summary>A Hugging Face model directory (dense or bitsandbytes NF4) or a LoQT model to continue from; null to pretrain from <see cref="Config"/>.</summary>
    public string? ModelDirectory { get; init; }

    /// <summary>The shape of a model pretrained from random initialization (when <see cref="ModelDirectory"/> is null).</summary>
    public LlamaConfig? Config { get; init; }

    /// <summary>Where the tokenizer is; defaults to <see cref="ModelDirectory"/>.</summary>
    public string? TokenizerDirectory { get; init; }

    /// <summary>Training data: a file or directory (see <see cref="LoQT.Data.TokenDataset"/>); with <see cref="TrainData"/>, only its name.</summary>
    public required string Dataset { get; init; }

    /// <summary>
    /// Training sequences already in memory (a benchmark's random tokens, say); when set, <see cref="Dataset"/> is not
    /// read but only names them, and no tokenizer is needed. Their sequence length must be the options'.
    /// </summary>
    public LoQT.Data.TokenDataset? TrainData { get; init; }

    /// <summary>Whether to write checkpoints (periodic, final, on cancellation); false for a benchmark that only measures.</summary>
    public bool WriteCheckpoints { get; init; } = true;

    /// <summary>
    /// Where the time of dequantization, full gradients, SVD, error compensation and optimizer updates goes (given to the
    /// layer factory and the optimizer); null, the default, times nothing inside the step.
    /// </summary>
    public LoQT.Loqt.ITimingSink? Timings { get; init; }

    /// <summary>Called once the model and its optimizer exist, before the first step (a benchmark measures them there).</summary>
    public Action<LlamaForCausalLM, AdamWOptimizer>? ModelReady { get; init; }

    /// <summary>Validation data for periodic perplexity, or null.</summary>
    public string? EvalDataset { get; init; }

    /// <summary>Where checkpoints and <c>metrics.jsonl</c> go.</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>A checkpoint (or an output directory) to resume from, bit for bit: its saved options are used.</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>The options (ignored, except <see cref="TrainingOptions.Steps"/>, when resuming).</summary>
    public TrainingOptions Options { get; init; } = new();

    /// <summary>Where to compute; null for the CPU.</summary>
    public torch.Device? Device { get; init; }
}

/// <summary>How a run ended.</summary>
/// <param name="Steps">Optimizer steps done in all (including those before a resume).</param>
/// <param name="TrainLoss">Mean training loss of the last step.</param>
/// <param name="EvalLoss">The last validation loss, when there is an eval dataset.</param>
/// <param name="Checkpoint">The checkpoint written last; null when the run writes none (<see cref="TrainingRun.WriteCheckpoints"/>).</param>
/// <param name="Interrupted">Whether the run was cancelled (a checkpoint was saved first).</param>
/// <param name="TokensPerSecond">Training tokens per second over this process's steps.</param>
/// <param name="PeakResidentBytes">Peak resident memory of the process.</param>
/// <param name="Timings">Where the time went.</param>
public sealed record TrainingResult(
    long Steps,
    double TrainLoss,
    double? EvalLoss,
    string? Checkpoint,
    bool Interrupted,
    double TokensPerSecond,
    long PeakResidentBytes,
    IReadOnlyDictionary<string, double> Timings);
