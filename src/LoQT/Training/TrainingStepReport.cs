namespace LoQT.Training;

/// <summary>What a trainer reports after each optimizer step (for progress bars and logs).</summary>
/// <param name="Step">Optimizer steps done (1-based after the first step).</param>
/// <param name="TotalSteps">Steps the run will take.</param>
/// <param name="Loss">Mean training loss of this step's batches.</param>
/// <param name="LearningRate">Learning rate used in this step.</param>
/// <param name="TokensPerSecond">Training tokens per second over this step.</param>
/// <param name="Elapsed">Wall time since the run (or its resumption) started.</param>
/// <param name="Remaining">Estimated time left, once a step rate is known.</param>
/// <param name="ResidentBytes">Resident memory of the process now.</param>
/// <param name="Reinitialized">Whether this step merged the adapters and took new projections.</param>
/// <param name="EvalLoss">Validation loss when this step ran an evaluation.</param>
public sealed record TrainingStepReport(
    long Step,
    long TotalSteps,
    double Loss,
    double LearningRate,
    double TokensPerSecond,
    TimeSpan Elapsed,
    TimeSpan? Remaining,
    long ResidentBytes,
    bool Reinitialized,
    double? EvalLoss);
