namespace LoQT.Training;

/// <summary>One linear layer's weight shape (out × in).</summary>
internal sealed record LinearShape(string Name, int Out, int In)
{
    public long Elements => (long)Out * In;

    /// <summary>The projected (smaller) side: P is rank × this.</summary>
    public int Small => Math.Min(Out, In);

    /// <summary>The kept (larger) side: B is rank × this.</summary>
    public int Large => Math.Max(Out, In);
}
