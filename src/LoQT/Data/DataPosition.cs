namespace LoQT.Data;

/// <summary>
/// Where a <see cref="TokenBatchLoader"/> stands: the epoch and how many sequences of that epoch's order were
/// already handed out. Save it with a training checkpoint and pass it back to resume with exactly the next batch
/// (same dataset, options and seed; the batch size may change).
/// </summary>
/// <param name="Epoch">Zero-based epoch.</param>
/// <param name="Sequence">Sequences of this epoch already handed out.</param>
public readonly record struct DataPosition(int Epoch, int Sequence);
