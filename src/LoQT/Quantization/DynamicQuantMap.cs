namespace LoQT.Quantization;

/// <summary>
/// The 8-bit "dynamic" quantization maps of bitsandbytes (<c>create_dynamic_map</c>) and blockwise 8-bit
/// quantization with them: used for NF4 double quantization (signed map, blocks of 256) and for the states of
/// 8-bit AdamW (signed map for the first moment, unsigned for the second).
/// </summary>
/// <remarks>
/// Blockwise semantics follow bitsandbytes' reference kernels: per block absmax = max |x| (fp32); a full block
/// is scaled by multiplying with <c>1 / max(absmax, 1e-38)</c>, a short last block by dividing by
/// <c>max(absmax, 1e-38)</c> (and that clamped value is what is stored for it); the code is the count of map
/// midpoints strictly below the scaled value. Dequantization is <c>map[code] * absmax</c> in fp32.
/// </remarks>
public static class DynamicQuantMap
{
    /// <summary>Number of entries in an 8-bit map.</summary>
    public const int Size = 256;

    /// <summary>Smallest absmax used as a divisor (bitsandbytes' clamp), so an all-zero block maps to code 0.0.</summary>
    public const float MinAbsmax = 1e-38f;

    // Elements per parallel work item: large enough that scheduling costs nothing next to the work.
    private const int ParallelChunkElements = 1 << 16;

    private static readonly float[] SignedMap = Create(signed: true);
    private static readonly float[] UnsignedMap = Create(signed: false);
    private static readonly float[] SignedMidpoints = Nf4Codebook.ComputeMidpoints(SignedMap);
    private static readonly float[] UnsignedMidpoints = Nf4Codebook.ComputeMidpoints(UnsignedMap);
    private static readonly float[] SignedSearchTable = Blockwise8BitKernel.SearchTable(SignedMap);
    private static readonly float[] UnsignedSearchTable = Blockwise8BitKernel.SearchTable(UnsignedMap);

    /// <summary>A copy of the signed map (256 ascending values in [-1, 1]): <c>create_dynamic_map(signed=True)</c>.</summary>
    public static float[] Signed => (float[])SignedMap.Clone();

    /// <summary>A copy of the unsigned map (256 ascending values in [0, 1]): <c>create_dynamic_map(signed=False)</c>.</summary>
    public static float[] Unsigned => (float[])UnsignedMap.Clone();

    /// <summary>The signed map without copying.</summary>
    public static ReadOnlySpan<float> SignedValues => SignedMap;

    /// <summary>The unsigned map without copying.</summary>
    public static ReadOnlySpan<float> UnsignedValues => UnsignedMap;

    /// <summary>
    /// Builds a dynamic map the way bitsandbytes' <c>create_dynamic_map</c> does: for each exponent i the float32
    /// midpoints of <c>linspace(0.1, 1, k)</c> scaled by <c>10^(i - (maxExponentBits - 1))</c> (and negated when
    /// signed), then 0 and 1, padded with zeros to 2^totalBits and sorted.
    /// </summary>
    /// <param name="signed">Whether the map covers [-1, 1] (true) or [0, 1].</param>
    /// <param name="maxExponentBits">Number of decimal exponents (bitsandbytes' default 7).</param>
    /// <param name="totalBits">Bits per code (bitsandbytes' default 8).</param>
    /// <returns>2^totalBits ascending float32 values.</returns>
    public static float[] Create(bool signed = true, int maxExponentBits = 7, int totalBits = 8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalBits, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(totalBits, 16);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxExponentBits, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxExponentBits, totalBits - 1);

        var data = new List<float>(1 << totalBits);
        var nonSignBits = totalBits - 1;
        var additionalItems = (1 << (nonSignBits - maxExponentBits)) - 1;
        var lastScale = 0f;
        for (var i = 0; i < maxExponentBits; i++)
        {
            var fractionItems = signed
                ? (1 << (i + nonSignBits - maxExponentBits)) + 1
                : (1 << (i + nonSignBits - maxExponentBits + 1)) + 1;
            lastScale = (float)Math.Pow(10, -(maxExponentBits - 1) + i);
            AddScaledMeans(data, fractionItems, lastScale, signed);
        }

        if (additionalItems > 0)
        {
            // bitsandbytes reuses the last exponent's scale here.
            AddScaledMeans(data, additionalItems + 1, lastScale, signed);
        }

        data.Add(0f);
        data.Add(1f);
        if (data.Count > 1 << totalBits)
        {
            throw new ArgumentException($"A dynamic map with maxExponentBits={maxExponentBits} needs more than {1 << totalBits} entries.", nameof(maxExponentBits));
        }

        while (data.Count < 1 << totalBits)
        {
            data.Add(0f);
        }

        var map = data.ToArray();
        Array.Sort(map);
        return map;
    }

    /// <summary>Number of blocks (absmax values) for <paramref name="count"/> elements.</summary>
    public static long BlockCount(long count, int blockSize) => (count + blockSize - 1) / blockSize;

    /// <summary>
    /// Quantizes <paramref name="input"/> blockwise to 8-bit codes of <paramref name="map"/>.
    /// </summary>
    /// <param name="input">Values to quantize.</param>
    /// <param name="map">256 ascending values (e.g. <see cref="SignedValues"/>).</param>
    /// <param name="codes">Receives one code per input element.</param>
    /// <param name="absmax">Receives one scale per block (<see cref="BlockCount"/> entries).</param>
    /// <param name="blockSize">Elements per block (positive).</param>
    public static void QuantizeBlockwise(ReadOnlySpan<float> input, ReadOnlySpan<float> map, Span<byte> codes, Span<float> absmax, int blockSize) =>
        QuantizeBlockwise(input, map, codes, absmax, blockSize, Blockwise8BitKernel.VectorAvailable);

    /// <summary>Dequantizes blockwise 8-bit codes: <c>output[i] = map[codes[i]] * absmax[i / blockSize]</c> (fp32).</summary>
    /// <param name="codes">One code per element.</param>
    /// <param name="absmax">One scale per block.</param>
    /// <param name="map">The map the codes index (256 entries).</param>
    /// <param name="output">Receives one value per code.</param>
    /// <param name="blockSize">Elements per block (positive).</param>
    public static void DequantizeBlockwise(ReadOnlySpan<byte> codes, ReadOnlySpan<float> absmax, ReadOnlySpan<float> map, Span<float> output, int blockSize) =>
        DequantizeBlockwise(codes, absmax, map, output, blockSize, Blockwise8BitKernel.VectorAvailable);

    /// <summary><see cref="QuantizeBlockwise(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{byte}, Span{float}, int)"/> with the path chosen (for tests).</summary>
    internal static unsafe void QuantizeBlockwise(ReadOnlySpan<float> input, ReadOnlySpan<float> map, Span<byte> codes, Span<float> absmax, int blockSize, bool vector)
    {
        ValidateMap(map);
        ValidateLengths(input.Length, codes.Length, absmax.Length, blockSize, nameof(codes));
        var table = SearchTableOf(map);
        fixed (float* pIn = input)
        fixed (byte* pCodes = codes)
        fixed (float* pAbsmax = absmax)
        fixed (float* pTable = table)
        {
            var inPtr = (IntPtr)pIn;
            var codesPtr = (IntPtr)pCodes;
            var absmaxPtr = (IntPtr)pAbsmax;
            var tablePtr = (IntPtr)pTable;
            var n = input.Length;
            ForEachBlockRange(n, blockSize, (firstBlock, endBlock) =>
                Blockwise8BitKernel.QuantizeBlocks((float*)inPtr, n, (float*)tablePtr, (byte*)codesPtr, (float*)absmaxPtr, blockSize, firstBlock, endBlock, vector));
        }
    }

    /// <summary><see cref="DequantizeBlockwise(ReadOnlySpan{byte}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int)"/> with the path chosen (for tests).</summary>
    internal static unsafe void DequantizeBlockwise(ReadOnlySpan<byte> codes, ReadOnlySpan<float> absmax, ReadOnlySpan<float> map, Span<float> output, int blockSize, bool vector)
    {
        ValidateMap(map);
        ValidateLengths(output.Length, codes.Length, absmax.Length, blockSize, nameof(codes));
        fixed (byte* pCodes = codes)
        fixed (float* pAbsmax = absmax)
        fixed (float* pOut = output)
        fixed (float* pMap = map)
        {
            var codesPtr = (IntPtr)pCodes;
            var absmaxPtr = (IntPtr)pAbsmax;
            var outPtr = (IntPtr)pOut;
            var mapPtr = (IntPtr)pMap;
            var n = output.Length;
            ForEachBlockRange(n, blockSize, (firstBlock, endBlock) =>
                Blockwise8BitKernel.DequantizeBlocks((byte*)codesPtr, n, (float*)mapPtr, (float*)absmaxPtr, (float*)outPtr, blockSize, firstBlock, endBlock, vector));
        }
    }

    /// <summary>
    /// The code of one value already divided by its block's absmax: the number of map midpoints m with
    /// <c>!(m &gt;= v)</c> (torch.bucketize semantics: ties go to the lower code, NaN to the last).
    /// </summary>
    /// <param name="scaled">The scaled value.</param>
    /// <param name="midpoints">The ascending midpoints of the map.</param>
    public static int NearestCode(float scaled, ReadOnlySpan<float> midpoints)
    {
        int lo = 0, hi = midpoints.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (!(midpoints[mid] >= scaled))
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>The 255 float32 midpoints <c>(map[i] + map[i+1]) / 2</c> of a map.</summary>
    /// <param name="map">An ascending map.</param>
    public static float[] MidpointsOf(ReadOnlySpan<float> map)
    {
        if (map.SequenceEqual(SignedMap))
        {
            return SignedMidpoints;
        }

        return map.SequenceEqual(UnsignedMap) ? UnsignedMidpoints : Nf4Codebook.ComputeMidpoints(map);
    }

    private static void AddScaledMeans(List<float> data, int items, float scale, bool signed)
    {
        var boundaries = Linspace(0.1f, 1f, items);
        var means = new float[items - 1];
        for (var j = 0; j < means.Length; j++)
        {
            var sum = boundaries[j] + boundaries[j + 1];
            means[j] = sum / 2f;
        }

        foreach (var m in means)
        {
            data.Add(scale * m);
        }

        if (signed)
        {
            var negative = -scale;
            foreach (var m in means)
            {
                data.Add(negative * m);
            }
        }
    }

    /// <summary>
    /// torch.linspace in float32 with the rounding of torch's vectorized x86 CPU kernel, which is how the maps
    /// bitsandbytes uses came out (checked bit for bit against a reference map): runs of 2×8 elements start from a
    /// fused <c>start + step·i</c> (first half) or <c>end − step·(steps−1−i)</c> (second half) and add <c>l·step</c>
    /// per lane; the rest is computed one element at a time with the fused formula.
    /// </summary>
    internal static float[] Linspace(float start, float end, int steps)
    {
        const int Lanes = 8;
        var values = new float[steps];
        if (steps == 1)
        {
            values[0] = start;
            return values;
        }

        var step = (end - start) / (steps - 1);
        var halfway = steps / 2;
        float Fused(int i) => i < halfway ? MathF.FusedMultiplyAdd(step, i, start) : MathF.FusedMultiplyAdd(-step, steps - i - 1, end);

        // Runs of 8 come in pairs; once fewer than 16 elements remain, the rest is done one at a time.
        var pairedEnd = steps / (2 * Lanes) * (2 * Lanes);
        for (var index = 0; index < pairedEnd; index += Lanes)
        {
            var first = Fused(index);
            values[index] = first;
            for (var lane = 1; lane < Lanes; lane++)
            {
                var offset = lane * step;
                values[index + lane] = first + offset;
            }
        }

        for (var index = pairedEnd; index < steps; index++)
        {
            values[index] = Fused(index);
        }

        return values;
    }

    internal static void ForEachBlockRange(int count, int blockSize, Action<int, int> body)
    {
        var blocks = (int)BlockCount(count, blockSize);
        var blocksPerChunk = Math.Max(1, ParallelChunkElements / blockSize);
        var chunks = (blocks + blocksPerChunk - 1) / blocksPerChunk;
        if (chunks <= 1)
        {
            body(0, blocks);
            return;
        }

        Parallel.For(0, chunks, c => body(c * blocksPerChunk, Math.Min(blocks, (c + 1) * blocksPerChunk)));
    }

    private static float[] SearchTableOf(ReadOnlySpan<float> map) =>
        map.SequenceEqual(SignedMap) ? SignedSearchTable
        : map.SequenceEqual(UnsignedMap) ? UnsignedSearchTable
        : Blockwise8BitKernel.SearchTable(map);

    private static void ValidateMap(ReadOnlySpan<float> map)
    {
        if (map.Length != Size)
        {
            throw new ArgumentException($"A dynamic quantization map has {Size} entries, got {map.Length}.", nameof(map));
        }
    }

    private static void ValidateLengths(int count, int codesLength, int absmaxLength, int blockSize, string codesName)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1, nameof(blockSize));
        if (codesLength != count)
        {
            throw new ArgumentException($"Expected {count} codes (one per element), got {codesLength}.", codesName);
        }

        var blocks = BlockCount(count, blockSize);
        if (absmaxLength != blocks)
        {
            throw new ArgumentException($"Expected {blocks} absmax values for {count} elements in blocks of {blockSize}, got {absmaxLength}.", "absmax");
        }
    }
}
