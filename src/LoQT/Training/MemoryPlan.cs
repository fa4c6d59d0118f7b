namespace LoQT.Training;

/// <summary>The planner's prediction for one model and one set of options.</summary>
/// <param name="Options">The options planned for.</param>
/// <param name="TotalParameters">Parameters of the model.</param>
/// <param name="TrainableParameters">Elements that receive gradients (GaLore and full: every trained weight).</param>
/// <param name="Breakdown">Peak memory by part.</param>
public sealed record MemoryPlan(MemoryPlanOptions Options, long TotalParameters, long TrainableParameters, MemoryBreakdown Breakdown)
{
    /// <summary>The predicted peak in bytes.</summary>
    public long Total => Breakdown.Total;

    /// <summary>Whether the predicted peak is at most <paramref name="budgetBytes"/>.</summary>
    /// <param name="budgetBytes">Available memory in bytes.</param>
    public bool FitsIn(long budgetBytes) => Total <= budgetBytes;
}
