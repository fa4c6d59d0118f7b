namespace LoQT.SafeTensors;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor's name (its key in the header).</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions, outermost first; empty for a scalar.</param>
/// <param name="DataOffset">Where the tensor's bytes begin, relative to the start of the data section (just after the header).</param>
/// <param name="ByteLength">How many bytes the tensor occupies: <see cref="ElementCount"/> × element size.</param>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, long[] Shape, long DataOffset, long ByteLength)
{
    /// <summary>The product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount => Shape.Aggregate(1L, (product, dim) => product * dim);

    /// <summary>The shape as text, e.g. <c>[4096, 11008]</c>.</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    /// <summary>Name, dtype, shape and byte range, e.g. <c>lm_head.weight F32 [512, 64] @0+131072</c>.</summary>
    public override string ToString() =>
        FormattableString.Invariant($"{Name} {DType.ToHeaderName()} {ShapeText} @{DataOffset}+{ByteLength}");
}
