namespace LoQT.Data;

/// <summary>One sequence of a <see cref="TokenDataset"/>: token ids and which of them the loss is computed on.</summary>
public readonly struct TokenSequence
{
    internal TokenSequence(ReadOnlyMemory<int> inputIds, ReadOnlyMemory<bool> lossMask)
    {
        InputIds = inputIds;
        LossMask = lossMask;
    }

    /// <summary>The token ids (no padding).</summary>
    public ReadOnlyMemory<int> InputIds { get; }

    /// <summary>Per token, whether it is a training target; empty when all are (text and pre-tokenized datasets).</summary>
    public ReadOnlyMemory<bool> LossMask { get; }

    /// <summary>Number of tokens.</summary>
    public int Length => InputIds.Length;

    /// <summary>Whether the token at <paramref name="position"/> is a training target.</summary>
    public bool IsTarget(int position) => LossMask.IsEmpty || LossMask.Span[position];
}
