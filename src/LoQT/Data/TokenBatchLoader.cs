namespace LoQT.Data;

/// <summary>
/// Hands out the batches of a <see cref="TokenDataset"/> epoch after epoch, in file order or in a shuffled order
/// that depends only on (seed, epoch), so a run resumed from a saved <see cref="Position"/> sees the same batches.
/// A batch never spans two epochs (the last batch of an epoch may be smaller). Not thread-safe.
/// </summary>
public sealed class TokenBatchLoader
{
    private readonly TokenDataset _dataset;
    private int[]? _order;
    private int _orderEpoch = -1;

    /// <summary>Creates a loader.</summary>
    /// <param name="dataset">The sequences.</param>
    /// <param name="batchSize">Sequences per batch.</param>
    /// <param name="shuffle">Shuffle the sequence order every epoch (training); <c>false</c> keeps file order (evaluation).</param>
    /// <param name="seed">Seed of the shuffled order.</param>
    /// <param name="position">Where to start, e.g. a <see cref="Position"/> saved with a checkpoint.</param>
    public TokenBatchLoader(TokenDataset dataset, int batchSize, bool shuffle, ulong seed = 0, DataPosition position = default)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(position.Epoch, nameof(position));
        if (position.Sequence < 0 || position.Sequence > dataset.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(position), position, $"Sequence must be within 0..{dataset.Count} for this dataset.");
        }

        _dataset = dataset;
        BatchSize = batchSize;
        Shuffle = shuffle;
        Seed = seed;
        Position = position.Sequence == dataset.Count ? new DataPosition(position.Epoch + 1, 0) : position;
    }

    /// <summary>Sequences per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }

    /// <summary>Seed of the shuffled order.</summary>
    public ulong Seed { get; }

    /// <summary>The position of the next batch.</summary>
    public DataPosition Position { get; private set; }

    /// <summary>Batches in one epoch.</summary>
    public int BatchesPerEpoch => (_dataset.Count + BatchSize - 1) / BatchSize;

    /// <summary>The next batch; after the last batch of an epoch, the first of the next one.</summary>
    public TokenBatch Next()
    {
        var (epoch, start) = Position;
        var count = Math.Min(BatchSize, _dataset.Count - start);
        var order = OrderOf(epoch);
        var indices = new int[count];
        for (var i = 0; i < count; i++)
        {
            indices[i] = order is null ? start + i : order[start + i];
        }

        var next = start + count;
        Position = next == _dataset.Count ? new DataPosition(epoch + 1, 0) : new DataPosition(epoch, next);
        return _dataset.CreateBatch(indices);
    }

    /// <summary>The batches left in the current epoch (all of it from a fresh position): one pass for evaluation.</summary>
    public IEnumerable<TokenBatch> RestOfEpoch()
    {
        var epoch = Position.Epoch;
        while (Position.Epoch == epoch)
        {
            yield return Next();
        }
    }

    private int[]? OrderOf(int epoch)
    {
        if (!Shuffle)
        {
            return null;
        }

        if (_orderEpoch != epoch)
        {
            _order = DeterministicShuffle.Permutation(_dataset.Count, Seed, epoch);
            _orderEpoch = epoch;
        }

        return _order;
    }
}
