namespace LoQT.Data;

/// <summary>
/// A batch for a causal language model in Hugging Face's convention: <see cref="Labels"/> are the input ids
/// themselves (with <see cref="IgnoreIndex"/> where no loss is taken) and the loss shifts them, so the logits at
/// position t are scored against <c>Labels[t + 1]</c> and <c>Labels[0]</c> of a row is never a target.
/// All arrays are row-major <c>[BatchSize, SequenceLength]</c>, padding on the right.
/// </summary>
public sealed class TokenBatch
{
    /// <summary>The label of positions that take no loss (prompt tokens, padding), as in PyTorch's cross-entropy.</summary>
    public const long IgnoreIndex = -100;

    /// <summary>Creates a batch; the arrays must hold <paramref name="batchSize"/> × <paramref name="sequenceLength"/> values.</summary>
    public TokenBatch(long[] inputIds, long[] attentionMask, long[] labels, int batchSize, int sequenceLength)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentNullException.ThrowIfNull(labels);
        var size = (long)batchSize * sequenceLength;
        if (batchSize <= 0 || sequenceLength <= 0 || inputIds.LongLength != size || attentionMask.LongLength != size || labels.LongLength != size)
        {
            throw new ArgumentException($"A {batchSize}×{sequenceLength} batch needs arrays of {size} values.");
        }

        InputIds = inputIds;
        AttentionMask = attentionMask;
        Labels = labels;
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
    }

    /// <summary>Token ids; padding positions hold the tokenizer's pad id (or EOS, or 0).</summary>
    public long[] InputIds { get; }

    /// <summary>1 for real tokens, 0 for padding.</summary>
    public long[] AttentionMask { get; }

    /// <summary>Input ids where the loss is taken, <see cref="IgnoreIndex"/> elsewhere.</summary>
    public long[] Labels { get; }

    /// <summary>Rows.</summary>
    public int BatchSize { get; }

    /// <summary>Columns.</summary>
    public int SequenceLength { get; }

    /// <summary>Real (non-padding) tokens.</summary>
    public long TokenCount => AttentionMask.Sum();

    /// <summary>Tokens the shifted loss scores: positions 1.. of each row whose label is not <see cref="IgnoreIndex"/>.</summary>
    public long TargetCount
    {
        get
        {
            long count = 0;
            for (var row = 0; row < BatchSize; row++)
            {
                for (var t = 1; t < SequenceLength; t++)
                {
                    if (Labels[(row * SequenceLength) + t] != IgnoreIndex)
                    {
                        count++;
                    }
                }
            }

            return count;
        }
    }
}
