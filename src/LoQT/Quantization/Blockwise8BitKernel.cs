using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LoQT.Quantization;

/// <summary>
/// The inner loops of blockwise 8-bit quantization (<see cref="DynamicQuantMap"/>): an 8-step binary search over the
/// map's midpoints, eight lanes at a time with AVX2 gathers where available, one element at a time otherwise.
/// </summary>
internal static class Blockwise8BitKernel
{
    /// <summary>Whether the gather path runs on this machine.</summary>
    public static bool VectorAvailable => Avx2.IsSupported;

    /// <summary>
    /// The search table of a 256-entry map: <c>table[j]</c> = midpoint j−1 for j = 1..255 (<c>table[0]</c> is never read).
    /// The code of v is the largest j with <c>!(table[j] &gt;= v)</c>, i.e. the count of midpoints below v (NaN: 255).
    /// </summary>
    public static float[] SearchTable(ReadOnlySpan<float> map)
    {
        var table = new float[DynamicQuantMap.Size];
        table[0] = float.NegativeInfinity;
        for (var j = 1; j < table.Length; j++)
        {
            // (map[j-1] + map[j]) / 2 in float32, as (code[:-1] + code[1:]) / 2 in torch.
            var sum = map[j - 1] + map[j];
            table[j] = sum * 0.5f;
        }

        return table;
    }

    /// <summary>Quantizes blocks [firstBlock, endBlock) of <paramref name="count"/> elements; returns nothing, writes codes and absmax.</summary>
    public static unsafe void QuantizeBlocks(float* input, int count, float* table, byte* codes, float* absmax, int blockSize, int firstBlock, int endBlock, bool vector)
    {
        for (var b = firstBlock; b < endBlock; b++)
        {
            var start = b * blockSize;
            var length = Math.Min(blockSize, count - start);
            var x = input + start;
            var max = Nf4Cpu.AbsMax(x, length, vector ? Nf4Cpu.Instructions.Vector256 : Nf4Cpu.Instructions.Scalar);
            var divisor = MathF.Max(max, DynamicQuantMap.MinAbsmax);
            var target = codes + start;
            if (length == blockSize)
            {
                var reciprocal = 1f / divisor;
                var i = vector ? QuantizeScaledVector(x, length, reciprocal, table, target) : 0;
                for (; i < length; i++)
                {
                    target[i] = Search(x[i] * reciprocal, table);
                }

                absmax[b] = max;
            }
            else
            {
                for (var i = 0; i < length; i++)
                {
                    target[i] = Search(x[i] / divisor, table);
                }

                absmax[b] = divisor;
            }
        }
    }

    /// <summary>Dequantizes blocks [firstBlock, endBlock): <c>map[code] * absmax</c>.</summary>
    public static unsafe void DequantizeBlocks(byte* codes, int count, float* map, float* absmax, float* output, int blockSize, int firstBlock, int endBlock, bool vector)
    {
        for (var b = firstBlock; b < endBlock; b++)
        {
            var start = b * blockSize;
            var length = Math.Min(blockSize, count - start);
            var scale = absmax[b];
            var c = codes + start;
            var o = output + start;
            var i = 0;
            if (vector)
            {
                var factor = Vector256.Create(scale);
                for (; i <= length - 8; i += 8)
                {
                    var index = Avx2.ConvertToVector256Int32(c + i);
                    Vector256.Store(Avx2.GatherVector256(map, index, 4) * factor, o + i);
                }
            }

            for (; i < length; i++)
            {
                o[i] = map[c[i]] * scale;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe byte Search(float v, float* table)
    {
        var index = 0;
        for (var step = 128; step > 0; step >>= 1)
        {
            index += !(table[index + step] >= v) ? step : 0;
        }

        return (byte)index;
    }

    /// <summary>Codes of 32 elements at a time; returns how many elements it did.</summary>
    private static unsafe int QuantizeScaledVector(float* x, int length, float reciprocal, float* table, byte* codes)
    {
        var factor = Vector256.Create(reciprocal);
        var i = 0;
        for (; i <= length - 32; i += 32)
        {
            var low = Vector256.Narrow(Codes(Vector256.Load(x + i) * factor, table), Codes(Vector256.Load(x + i + 8) * factor, table));
            var high = Vector256.Narrow(Codes(Vector256.Load(x + i + 16) * factor, table), Codes(Vector256.Load(x + i + 24) * factor, table));
            Vector256.Store(Vector256.Narrow(low, high), codes + i);
        }

        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<uint> Codes(Vector256<float> v, float* table)
    {
        var index = Vector256<int>.Zero;
        for (var step = 128; step > 0; step >>= 1)
        {
            var candidate = index + Vector256.Create(step);
            var threshold = Avx2.GatherVector256(table, candidate, 4);
            index = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(threshold, v).AsInt32(), index, candidate);
        }

        return index.AsUInt32();
    }
}
