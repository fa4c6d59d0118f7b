using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LoQT.Quantization;

/// <summary>
/// NF4 quantization and dequantization over memory on the CPU: vectorized (AVX-512 / AVX2 where present, a lookup
/// table otherwise) and parallel over blocks, with results identical to bitsandbytes' reference semantics.
/// </summary>
/// <remarks>
/// Layout: <c>packed</c> holds two 4-bit codes per byte, the first element in the high nibble, an odd count padded
/// with the code of 0.0; <c>absmax</c> holds one fp32 scale per block. A full block is scaled by multiplying with
/// <c>1 / max(absmax, 1e-38)</c>, a short last block by dividing by <c>max(absmax, 1e-38)</c>, which is also the
/// value stored for it (bitsandbytes does exactly this). Dequantization is <c>code[index] * absmax</c> in fp32, then
/// rounded to the output type.
/// </remarks>
public static class Nf4Cpu
{
    // Elements per parallel work item (a multiple of every block size): big enough that scheduling is noise.
    private const int ChunkElements = 1 << 16;

    // Elements staged at a time inside a work item: fits L1 together with its source.
    private const int StageElements = Nf4BlockSizes.Max;

    private static readonly ulong[] PairTable = BuildPairTable();

    private static float CanonicalNaN => BitConverter.UInt32BitsToSingle(0x7FC00000);

    /// <summary>Quantizes fp32 values.</summary>
    /// <param name="input">The values, flattened.</param>
    /// <param name="packed">Receives <see cref="Nf4BlockSizes.PackedLength"/> bytes.</param>
    /// <param name="absmax">Receives <see cref="Nf4BlockSizes.BlockCount"/> scales.</param>
    /// <param name="blockSize">Elements per block: a power of two from 32 to 4096.</param>
    public static unsafe void Quantize(ReadOnlySpan<float> input, Span<byte> packed, Span<float> absmax, int blockSize)
    {
        ValidateQuantize(input.Length, packed.Length, absmax.Length, blockSize);
        fixed (float* pIn = input)
        fixed (byte* pPacked = packed)
        fixed (float* pAbsmax = absmax)
        {
            QuantizeParallel((IntPtr)pIn, SourceKind.Float32, input.Length, (IntPtr)pPacked, (IntPtr)pAbsmax, blockSize, Best);
        }
    }

    /// <summary>Quantizes fp16 values (converted to fp32 exactly, as bitsandbytes does).</summary>
    /// <param name="input">The values, flattened.</param>
    /// <param name="packed">Receives <see cref="Nf4BlockSizes.PackedLength"/> bytes.</param>
    /// <param name="absmax">Receives <see cref="Nf4BlockSizes.BlockCount"/> scales.</param>
    /// <param name="blockSize">Elements per block: a power of two from 32 to 4096.</param>
    public static unsafe void Quantize(ReadOnlySpan<Half> input, Span<byte> packed, Span<float> absmax, int blockSize)
    {
        ValidateQuantize(input.Length, packed.Length, absmax.Length, blockSize);
        fixed (Half* pIn = input)
        fixed (byte* pPacked = packed)
        fixed (float* pAbsmax = absmax)
        {
            QuantizeParallel((IntPtr)pIn, SourceKind.Float16, input.Length, (IntPtr)pPacked, (IntPtr)pAbsmax, blockSize, Best);
        }
    }

    /// <summary>Quantizes bfloat16 values given as their raw 16-bit patterns (converted to fp32 exactly).</summary>
    /// <param name="input">The bf16 bit patterns, flattened.</param>
    /// <param name="packed">Receives <see cref="Nf4BlockSizes.PackedLength"/> bytes.</param>
    /// <param name="absmax">Receives <see cref="Nf4BlockSizes.BlockCount"/> scales.</param>
    /// <param name="blockSize">Elements per block: a power of two from 32 to 4096.</param>
    public static unsafe void QuantizeBFloat16(ReadOnlySpan<ushort> input, Span<byte> packed, Span<float> absmax, int blockSize)
    {
        ValidateQuantize(input.Length, packed.Length, absmax.Length, blockSize);
        fixed (ushort* pIn = input)
        fixed (byte* pPacked = packed)
        fixed (float* pAbsmax = absmax)
        {
            QuantizeParallel((IntPtr)pIn, SourceKind.BFloat16, input.Length, (IntPtr)pPacked, (IntPtr)pAbsmax, blockSize, Best);
        }
    }

    /// <summary>Dequantizes to fp32.</summary>
    /// <param name="packed">The packed codes (<see cref="Nf4BlockSizes.PackedLength"/> of the output length).</param>
    /// <param name="absmax">One scale per block.</param>
    /// <param name="output">Receives the values; its length is the element count.</param>
    /// <param name="blockSize">Elements per block: a power of two from 32 to 4096.</param>
    public static unsafe void Dequantize(ReadOnlySpan<byte> packed, ReadOnlySpan<float> absmax, Span<float> output, int blockSize)
    {
        ValidateDequantize(output.Length, packed.Length, absmax.Length, blockSize);
        fixed (byte* pPacked = packed)
        fixed (float* pAbsmax = absmax)
        fixed (float* pOut = output)
        {
            DequantizeParallel((IntPtr)pPacked, (IntPtr)pAbsmax, (IntPtr)pOut, TargetKind.Float32, output.Length, blockSize, Best);
        }
    }

    /// <summary>Dequantizes to fp16 (the fp32 product rounded to nearest even, as torch's <c>.to(float16)</c>).</summary>
    /// <param name="packed">The packed codes.</param>
    /// <param name="absmax">One scale per block.</param>
    /// <param name="output">Receives the values; its length is the element count.</param>
    /// <param name="blockSize">Elements per block: a power of two from 32 to 4096.</param>
    public static unsafe void Dequantize(ReadOnlySpan<byte> packed, ReadOnlySpan<float> absmax, Span<Half> output, int blockSize)
    {
        ValidateDequantize(output.Length, packed.Length, absmax.Length, blockSize);
        fixed (byte* pPacked = packed)
        fixed (float* pAbsmax = absmax)
        fixed (Half* pOut = output)
        {
            DequantizeParallel((IntPtr)pPacked, (IntPtr)pAbsmax, (IntPtr)pOut, TargetKind.Float16, output.Length, blockSize, Best);
        }
    }

    /// <summary>Dequantizes to bfloat16 bit patterns (the fp32 product rounded to nearest even, as torch's <c>.to(bfloat16)</c>).</summary>
    /// <param name="packed">The packed codes.</param>
    /// <param name="absmax">One scale per block.</param>
    /// <param name="output">Receives the bf16 bit patterns; its length is the element count.</param>
    /// <param name="blockSize">Elements per block: a power of two from 32 to 4096.</param>
    public static unsafe void DequantizeBFloat16(ReadOnlySpan<byte> packed, ReadOnlySpan<float> absmax, Span<ushort> output, int blockSize)
    {
        ValidateDequantize(output.Length, packed.Length, absmax.Length, blockSize);
        fixed (byte* pPacked = packed)
        fixed (float* pAbsmax = absmax)
        fixed (ushort* pOut = output)
        {
            DequantizeParallel((IntPtr)pPacked, (IntPtr)pAbsmax, (IntPtr)pOut, TargetKind.BFloat16, output.Length, blockSize, Best);
        }
    }

    /// <summary>Rounds fp32 to bfloat16 (nearest, ties to even; NaN to the canonical quiet NaN), as torch does.</summary>
    /// <param name="value">The fp32 value.</param>
    public static ushort ToBFloat16Bits(float value)
    {
        if (float.IsNaN(value))
        {
            return 0x7FC0;
        }

        var bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>The fp32 value of a bfloat16 bit pattern (exact).</summary>
    /// <param name="bits">The bf16 bit pattern.</param>
    public static float FromBFloat16Bits(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>Instruction sets the kernels have paths for, from the portable one up.</summary>
    internal enum Instructions
    {
        Scalar,
        Vector256,
        Avx512,
    }

    /// <summary>The widest path this machine runs.</summary>
    internal static Instructions Best { get; } =
        Avx512F.IsSupported && Avx2.IsSupported ? Instructions.Avx512
        : Avx2.IsSupported && Vector256.IsHardwareAccelerated ? Instructions.Vector256
        : Instructions.Scalar;

    internal enum SourceKind
    {
        Float32,
        Float16,
        BFloat16,
    }

    internal enum TargetKind
    {
        Float32,
        Float16,
        BFloat16,
    }

    /// <summary>Quantizes raw memory (for tensors): <paramref name="count"/> elements at <paramref name="input"/>.</summary>
    internal static void QuantizeParallel(IntPtr input, SourceKind kind, long count, IntPtr packed, IntPtr absmax, int blockSize, Instructions isa)
    {
        var chunks = (count + ChunkElements - 1) / ChunkElements;
        if (chunks <= 1)
        {
            QuantizeRange(input, kind, packed, absmax, blockSize, 0, count, isa);
            return;
        }

        Parallel.For(0L, chunks, c =>
        {
            var start = c * ChunkElements;
            QuantizeRange(input, kind, packed, absmax, blockSize, start, Math.Min(count, start + ChunkElements), isa);
        });
    }

    /// <summary>Dequantizes into raw memory (for tensors): <paramref name="count"/> elements at <paramref name="output"/>.</summary>
    internal static void DequantizeParallel(IntPtr packed, IntPtr absmax, IntPtr output, TargetKind kind, long count, int blockSize, Instructions isa)
    {
        var chunks = (count + ChunkElements - 1) / ChunkElements;
        if (chunks <= 1)
        {
            DequantizeRange(packed, absmax, output, kind, blockSize, 0, count, isa);
            return;
        }

        Parallel.For(0L, chunks, c =>
        {
            var start = c * ChunkElements;
            DequantizeRange(packed, absmax, output, kind, blockSize, start, Math.Min(count, start + ChunkElements), isa);
        });
    }

    /// <summary>Quantizes elements [start, end): start is a multiple of the block size.</summary>
    private static unsafe void QuantizeRange(IntPtr input, SourceKind kind, IntPtr packed, IntPtr absmax, int blockSize, long start, long end, Instructions isa)
    {
        var converted = stackalloc float[StageElements];
        var scaled = stackalloc float[StageElements];
        for (var stage = start; stage < end; stage += StageElements)
        {
            var length = (int)Math.Min(StageElements, end - stage);
            float* source;
            switch (kind)
            {
                case SourceKind.Float32:
                    source = (float*)input + stage;
                    break;
                case SourceKind.BFloat16:
                    WidenBFloat16((ushort*)input + stage, converted, length, isa);
                    source = converted;
                    break;
                default:
                    var half = (Half*)input + stage;
                    for (var i = 0; i < length; i++)
                    {
                        converted[i] = (float)half[i];
                    }

                    source = converted;
                    break;
            }

            for (var offset = 0; offset < length; offset += blockSize)
            {
                var blockLength = Math.Min(blockSize, length - offset);
                var block = source + offset;
                var target = (byte*)packed + ((stage + offset) >> 1);
                var max = AbsMax(block, blockLength, isa);
                var divisor = Math.Max(max, DynamicQuantMap.MinAbsmax);
                var blockIndex = (stage + offset) / blockSize;
                if (blockLength == blockSize)
                {
                    var reciprocal = 1f / divisor;
                    if (isa == Instructions.Avx512)
                    {
                        QuantizeScaledAvx512(block, blockLength, reciprocal, target);
                    }
                    else
                    {
                        Multiply(block, scaled, blockLength, reciprocal, isa);
                        IndexAndPack(scaled, blockLength, target, isa);
                    }

                    ((float*)absmax)[blockIndex] = max;
                }
                else
                {
                    for (var i = 0; i < blockLength; i++)
                    {
                        scaled[i] = block[i] / divisor;
                    }

                    IndexAndPack(scaled, blockLength, target, isa);
                    ((float*)absmax)[blockIndex] = divisor;
                }
            }
        }
    }

    /// <summary>
    /// Scales a full block (a multiple of 16 elements) by <paramref name="reciprocal"/>, finds each code by a 4-step
    /// binary search over the midpoints (one permute per step), and packs the codes two per byte.
    /// </summary>
    private static unsafe void QuantizeScaledAvx512(float* x, int length, float reciprocal, byte* packed)
    {
        // below[j] = midpoint j-1: the code is at least j exactly when !(below[j] >= v) (NaN counts as above all).
        var mids = Nf4Codebook.Midpoints;
        var below = Vector512.Create(
            0f, mids[0], mids[1], mids[2], mids[3], mids[4], mids[5], mids[6],
            mids[7], mids[8], mids[9], mids[10], mids[11], mids[12], mids[13], mids[14]);
        var middle = Vector512.Create(mids[7]);
        var eight = Vector512.Create(8);
        var four = Vector512.Create(4);
        var two = Vector512.Create(2);
        var one = Vector512.Create(1);
        var factor = Vector512.Create(reciprocal);
        for (var i = 0; i < length; i += 16)
        {
            var v = Vector512.Load(x + i) * factor;
            var index = Vector512.ConditionalSelect(Avx512F.CompareNotGreaterThanOrEqual(middle, v).AsInt32(), eight, Vector512<int>.Zero);
            index = Step(index, four, below, v);
            index = Step(index, two, below, v);
            index = Step(index, one, below, v);

            // Lane pairs (even, odd) as one 64-bit lane: (even << 4) | odd lands in its low byte.
            var pairs = index.AsUInt64();
            var bytes = Avx512F.ConvertToVector128Byte(Vector512.ShiftLeft(pairs, 4) | Vector512.ShiftRightLogical(pairs, 32));
            *(ulong*)(packed + (i >> 1)) = bytes.AsUInt64().ToScalar();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<int> Step(Vector512<int> index, Vector512<int> step, Vector512<float> below, Vector512<float> v)
        {
            var candidate = index + step;
            var threshold = Avx512F.PermuteVar16x32(below, candidate);
            return Vector512.ConditionalSelect(Avx512F.CompareNotGreaterThanOrEqual(threshold, v).AsInt32(), candidate, index);
        }
    }

    /// <summary>Dequantizes elements [start, end): start is a multiple of the block size.</summary>
    private static unsafe void DequantizeRange(IntPtr packed, IntPtr absmax, IntPtr output, TargetKind kind, int blockSize, long start, long end, Instructions isa)
    {
        var staged = stackalloc float[StageElements];
        var scales = (float*)absmax;
        for (var stage = start; stage < end; stage += StageElements)
        {
            var length = (int)Math.Min(StageElements, end - stage);
            var target = kind == TargetKind.Float32 ? (float*)output + stage : staged;
            var source = (byte*)packed + (stage >> 1);
            for (var offset = 0; offset < length; offset += blockSize)
            {
                var blockLength = Math.Min(blockSize, length - offset);
                DequantizeBlock(source + (offset >> 1), scales[(stage + offset) / blockSize], target + offset, blockLength, isa);
            }

            if (kind == TargetKind.BFloat16)
            {
                NarrowToBFloat16(staged, (ushort*)output + stage, length, isa);
            }
            else if (kind == TargetKind.Float16)
            {
                var half = (Half*)output + stage;
                for (var i = 0; i < length; i++)
                {
                    half[i] = (Half)staged[i];
                }
            }
        }
    }

    /// <summary>max |x| over a block; NaN (torch's canonical one) when any element is NaN.</summary>
    internal static unsafe float AbsMax(float* x, int length, Instructions isa)
    {
        var i = 0;
        var max = 0f;
        var sawNaN = false;
        if (isa >= Instructions.Vector256 && length >= Vector256<float>.Count)
        {
            var vmax = Vector256<float>.Zero;
            var vnan = Vector256<float>.Zero;
            for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Load(x + i);
                vmax = Vector256.MaxNative(vmax, Vector256.Abs(v));
                vnan |= ~Vector256.Equals(v, v);
            }

            for (var k = 0; k < Vector256<float>.Count; k++)
            {
                max = MathF.Max(max, vmax[k]);
            }

            sawNaN = vnan != Vector256<float>.Zero;
        }

        for (; i < length; i++)
        {
            var a = MathF.Abs(x[i]);
            sawNaN |= float.IsNaN(a);
            max = MathF.Max(max, a);
        }

        // torch's max reduction propagates NaN (as the positive quiet NaN); the native max above ignores it.
        return sawNaN ? CanonicalNaN : max;
    }

    private static unsafe void Multiply(float* x, float* y, int length, float factor, Instructions isa)
    {
        var i = 0;
        if (isa >= Instructions.Vector256)
        {
            var f = Vector256.Create(factor);
            for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256.Store(Vector256.Load(x + i) * f, y + i);
            }
        }

        for (; i < length; i++)
        {
            y[i] = x[i] * factor;
        }
    }

    private static unsafe void WidenBFloat16(ushort* x, float* y, int length, Instructions isa)
    {
        var i = 0;
        if (isa >= Instructions.Vector256)
        {
            for (; i <= length - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
            {
                var (lower, upper) = Vector256.Widen(Vector256.Load(x + i));
                Vector256.Store(Vector256.ShiftLeft(lower, 16).AsSingle(), y + i);
                Vector256.Store(Vector256.ShiftLeft(upper, 16).AsSingle(), y + i + Vector256<float>.Count);
            }
        }

        for (; i < length; i++)
        {
            y[i] = FromBFloat16Bits(x[i]);
        }
    }

    private static unsafe void NarrowToBFloat16(float* x, ushort* y, int length, Instructions isa)
    {
        var i = 0;
        if (isa >= Instructions.Vector256)
        {
            var one = Vector256.Create(1u);
            var bias = Vector256.Create(0x7FFFu);
            var nan = Vector256.Create(0x7FC0u);
            for (; i <= length - (2 * Vector256<float>.Count); i += 2 * Vector256<float>.Count)
            {
                var lower = RoundToBFloat16(Vector256.Load(x + i), one, bias, nan);
                var upper = RoundToBFloat16(Vector256.Load(x + i + Vector256<float>.Count), one, bias, nan);
                Vector256.Store(Vector256.Narrow(lower, upper), y + i);
            }
        }

        for (; i < length; i++)
        {
            y[i] = ToBFloat16Bits(x[i]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> RoundToBFloat16(Vector256<float> value, Vector256<uint> one, Vector256<uint> bias, Vector256<uint> nan)
    {
        var bits = value.AsUInt32();
        var rounded = Vector256.ShiftRightLogical(bits + bias + (Vector256.ShiftRightLogical(bits, 16) & one), 16);
        return Vector256.ConditionalSelect(Vector256.Equals(value, value).AsUInt32(), rounded, nan);
    }

    /// <summary>Code indices of scaled values, packed two per byte; an odd count pads the last low nibble with code 0.0.</summary>
    private static unsafe void IndexAndPack(float* scaled, int length, byte* packed, Instructions isa)
    {
        var i = 0;
        if (isa >= Instructions.Vector256)
        {
            var midpoints = stackalloc Vector256<float>[Nf4Codebook.Count - 1];
            var mids = Nf4Codebook.Midpoints;
            for (var k = 0; k < mids.Length; k++)
            {
                midpoints[k] = Vector256.Create(mids[k]);
            }

            var low = Vector256.Create((ushort)0xFF);
            for (; i <= length - 32; i += 32)
            {
                var q0 = Vector256.Narrow(Indices(Vector256.Load(scaled + i), midpoints), Indices(Vector256.Load(scaled + i + 8), midpoints));
                var q1 = Vector256.Narrow(Indices(Vector256.Load(scaled + i + 16), midpoints), Indices(Vector256.Load(scaled + i + 24), midpoints));
                var pairs = Vector256.Narrow(q0, q1).AsUInt16();

                // Each ushort holds (even index) | (odd index << 8); the byte wanted is (even << 4) | odd.
                var bytes = (Vector256.ShiftLeft(pairs, 4) | Vector256.ShiftRightLogical(pairs, 8)) & low;
                Vector256.Narrow(bytes, Vector256<ushort>.Zero).GetLower().Store(packed + (i >> 1));
            }
        }

        for (; i + 1 < length; i += 2)
        {
            packed[i >> 1] = (byte)((Nf4Codebook.NearestIndex(scaled[i]) << 4) | Nf4Codebook.NearestIndex(scaled[i + 1]));
        }

        if (i < length)
        {
            packed[i >> 1] = (byte)((Nf4Codebook.NearestIndex(scaled[i]) << 4) | Nf4Codebook.ZeroIndex);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<uint> Indices(Vector256<float> v, Vector256<float>* midpoints)
    {
        // index = number of midpoints m with !(m >= v): 15 minus the midpoints at or above v (NaN gives 15).
        var atOrAbove = Vector256<int>.Zero;
        for (var k = 0; k < Nf4Codebook.Count - 1; k++)
        {
            atOrAbove += Vector256.GreaterThanOrEqual(midpoints[k], v).AsInt32();
        }

        return (Vector256.Create(Nf4Codebook.Count - 1) + atOrAbove).AsUInt32();
    }

    /// <summary>Dequantizes one block (or the short last one) whose first element is the high nibble of <paramref name="source"/>[0].</summary>
    private static unsafe void DequantizeBlock(byte* source, float scale, float* target, int length, Instructions isa)
    {
        var i = 0;
        if (isa == Instructions.Avx512)
        {
            var codes = Vector512.Create(Nf4Codebook.Values);
            var shifts = Vector512.Create(4u, 0u, 4u, 0u, 4u, 0u, 4u, 0u, 4u, 0u, 4u, 0u, 4u, 0u, 4u, 0u);
            var nibble = Vector512.Create(0xFu);
            var factor = Vector512.Create(scale);
            for (; i <= length - 16; i += 16)
            {
                // 8 bytes -> each byte twice -> 16 lanes; even lanes take the high nibble, odd lanes the low one.
                var bytes = Vector128.CreateScalarUnsafe(*(ulong*)(source + (i >> 1))).AsByte();
                var doubled = Sse2.UnpackLow(bytes, bytes);
                var lanes = Avx512F.ConvertToVector512UInt32(doubled);
                var index = Avx512F.ShiftRightLogicalVariable(lanes, shifts) & nibble;
                Vector512.Store(Avx512F.PermuteVar16x32(codes, index.AsInt32()) * factor, target + i);
            }
        }
        else if (isa == Instructions.Vector256)
        {
            var codesLow = Vector256.Create(Nf4Codebook.Values[..8]);
            var codesHigh = Vector256.Create(Nf4Codebook.Values[8..]);
            var shifts = Vector256.Create(4u, 0u, 4u, 0u, 4u, 0u, 4u, 0u);
            var nibble = Vector256.Create(0xFu);
            var eight = Vector256.Create(8u);
            var factor = Vector256.Create(scale);
            for (; i <= length - 8; i += 8)
            {
                var bytes = Vector128.CreateScalarUnsafe(*(uint*)(source + (i >> 1))).AsByte();
                var doubled = Sse2.UnpackLow(bytes, bytes);
                var lanes = Avx2.ConvertToVector256Int32(doubled).AsUInt32();
                var index = Avx2.ShiftRightLogicalVariable(lanes, shifts) & nibble;
                var fromLow = Avx2.PermuteVar8x32(codesLow, index.AsInt32());
                var fromHigh = Avx2.PermuteVar8x32(codesHigh, index.AsInt32());
                var value = Vector256.ConditionalSelect(Vector256.Equals(index & eight, eight).AsSingle(), fromHigh, fromLow);
                Vector256.Store(value * factor, target + i);
            }
        }

        var table = PairTable;
        for (; i + 1 < length; i += 2)
        {
            var pair = table[source[i >> 1]];
            target[i] = BitConverter.UInt32BitsToSingle((uint)pair) * scale;
            target[i + 1] = BitConverter.UInt32BitsToSingle((uint)(pair >> 32)) * scale;
        }

        if (i < length)
        {
            target[i] = Nf4Codebook.Values[source[i >> 1] >> 4] * scale;
        }
    }

    /// <summary>The reference dequantization one element at a time (for tests of the vectorized paths).</summary>
    internal static void DequantizeScalar(ReadOnlySpan<byte> packed, ReadOnlySpan<float> absmax, Span<float> output, int blockSize)
    {
        var codes = Nf4Codebook.Values;
        for (var i = 0; i < output.Length; i++)
        {
            var b = packed[i >> 1];
            var index = (i & 1) == 0 ? b >> 4 : b & 0xF;
            output[i] = codes[index] * absmax[i / blockSize];
        }
    }

    private static ulong[] BuildPairTable()
    {
        // byte -> (code of its high nibble, code of its low nibble) as two fp32 in memory order.
        var table = new ulong[256];
        var codes = Nf4Codebook.Values;
        for (var b = 0; b < 256; b++)
        {
            table[b] = BitConverter.SingleToUInt32Bits(codes[b >> 4]) | ((ulong)BitConverter.SingleToUInt32Bits(codes[b & 0xF]) << 32);
        }

        return table;
    }

    private static void ValidateQuantize(int count, int packedLength, int absmaxLength, int blockSize)
    {
        Nf4BlockSizes.Validate(blockSize);
        if (packedLength != Nf4BlockSizes.PackedLength(count))
        {
            throw new ArgumentException($"Expected {Nf4BlockSizes.PackedLength(count)} packed bytes for {count} elements, got {packedLength}.", "packed");
        }

        if (absmaxLength != Nf4BlockSizes.BlockCount(count, blockSize))
        {
            throw new ArgumentException($"Expected {Nf4BlockSizes.BlockCount(count, blockSize)} absmax values for {count} elements in blocks of {blockSize}, got {absmaxLength}.", "absmax");
        }
    }

    private static void ValidateDequantize(int count, int packedLength, int absmaxLength, int blockSize) =>
        ValidateQuantize(count, packedLength, absmaxLength, blockSize);
}
