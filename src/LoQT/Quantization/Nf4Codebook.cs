namespace LoQT.Quantization;

/// <summary>
/// The 16 NF4 code values (the normal-float quantiles of QLoRA, as bitsandbytes ships them) and the 15 midpoints
/// between neighbours that decide which code a scaled value rounds to.
/// </summary>
public static class Nf4Codebook
{
    /// <summary>Number of codes (4 bits).</summary>
    public const int Count = 16;

    /// <summary>Index of the code 0.0, which padding and all-zero blocks quantize to.</summary>
    public const int ZeroIndex = 7;

    private static ReadOnlySpan<float> CodeValues =>
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    private static readonly float[] MidpointValues = ComputeMidpoints(CodeValues);

    /// <summary>The codes, sorted ascending; index i is the 4-bit value i.</summary>
    public static ReadOnlySpan<float> Values => CodeValues;

    /// <summary>
    /// The 15 midpoints <c>(code[i] + code[i+1]) / 2</c>, computed in float32 exactly as bitsandbytes does. A scaled
    /// value v gets the index of midpoints strictly below it, so a value on a midpoint goes to the lower code.
    /// </summary>
    public static ReadOnlySpan<float> Midpoints => MidpointValues;

    /// <summary>A new array with the 16 codes (for tensors and serialization as <c>quant_map</c>).</summary>
    public static float[] ToArray() => CodeValues.ToArray();

    /// <summary>The code index of one value already divided by its block's absmax.</summary>
    /// <remarks>Counts midpoints m with <c>!(m &gt;= v)</c>: the same as <c>m &lt; v</c>, and NaN maps to 15 as in torch.bucketize.</remarks>
    public static int NearestIndex(float scaled)
    {
        var index = 0;
        foreach (var m in MidpointValues)
        {
            if (!(m >= scaled))
            {
                index++;
            }
        }

        return index;
    }

    internal static float[] ComputeMidpoints(ReadOnlySpan<float> sortedCodes)
    {
        var midpoints = new float[sortedCodes.Length - 1];
        for (var i = 0; i < midpoints.Length; i++)
        {
            // The float32 sum, halved (exact): what (code[:-1] + code[1:]) / 2 gives in torch.
            var sum = sortedCodes[i] + sortedCodes[i + 1];
            midpoints[i] = sum * 0.5f;
        }

        return midpoints;
    }
}
