using System.Runtime.InteropServices;
using LoQT.Quantization;
using TorchSharp;

namespace LoQT.Tests.Quantization;

/// <summary>The CPU kernels: every instruction path this machine runs gives the same bytes, on every block size.</summary>
public class Nf4CpuTests
{
    public static TheoryData<string> Paths
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var isa in Enum.GetValues<Nf4Cpu.Instructions>().Where(i => i <= Nf4Cpu.Best))
            {
                data.Add(isa.ToString());
            }

            return data;
        }
    }

    public static TheoryData<string, int, int> PathsBlockSizesAndCounts
    {
        get
        {
            var data = new TheoryData<string, int, int>();
            foreach (var isa in Enum.GetValues<Nf4Cpu.Instructions>().Where(i => i <= Nf4Cpu.Best))
            {
                foreach (var blockSize in new[] { 32, 64, 256, 4096 })
                {
                    // Several parallel chunks with a short, odd last block; and a single short block.
                    data.Add(isa.ToString(), blockSize, (3 * 65536) + (5 * blockSize) + 17);
                    data.Add(isa.ToString(), blockSize, blockSize - 1);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EachPath_QuantizesTheFixtureCasesByteForByte(string path)
    {
        var isa = Enum.Parse<Nf4Cpu.Instructions>(path);
        var fixture = Nf4Fixture.Instance;
        foreach (var id in fixture.CaseIds.Where(i => fixture.DType($"case{i}.input") == "F32"))
        {
            var input = fixture.Floats($"case{id}.input");
            var (packed, absmax) = Quantize(input, 64, isa);

            Assert.Equal(fixture.Bytes($"case{id}.packed").ToArray(), packed);
            Assert.Equal(fixture.Floats($"case{id}.absmax"), absmax);
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EachPath_DequantizesTheFixtureCasesExactly(string path)
    {
        var isa = Enum.Parse<Nf4Cpu.Instructions>(path);
        var fixture = Nf4Fixture.Instance;
        foreach (var id in fixture.CaseIds)
        {
            var expected = fixture.Floats($"case{id}.dequant");
            var output = Dequantize(fixture.Bytes($"case{id}.packed").ToArray(), fixture.Floats($"case{id}.absmax"), expected.Length, 64, isa);

            Assert.Equal(Bits(expected), Bits(output));
        }
    }

    [Theory]
    [MemberData(nameof(PathsBlockSizesAndCounts))]
    public void EachPath_QuantizesLikeTheTorchOpsPath(string path, int blockSize, int count)
    {
        var isa = Enum.Parse<Nf4Cpu.Instructions>(path);
        var input = RandomNormal(count, seed: blockSize + count);
        using var tensor = torch.tensor(input);
        var (expectedPacked, expectedAbsmax) = Nf4TorchOps.Quantize4Bit(tensor, blockSize);
        using (expectedPacked)
        using (expectedAbsmax)
        {
            var (packed, absmax) = Quantize(input, blockSize, isa);

            Assert.Equal(expectedPacked.bytes.ToArray(), packed);
            Assert.Equal(MemoryMarshal.Cast<byte, float>(expectedAbsmax.bytes).ToArray(), absmax);
        }
    }

    [Theory]
    [MemberData(nameof(PathsBlockSizesAndCounts))]
    public void EachPath_DequantizesLikeTheScalarReference(string path, int blockSize, int count)
    {
        var isa = Enum.Parse<Nf4Cpu.Instructions>(path);
        var (packed, absmax) = Quantize(RandomNormal(count, seed: 7), blockSize, Nf4Cpu.Instructions.Scalar);
        var expected = new float[count];
        Nf4Cpu.DequantizeScalar(packed, absmax, expected, blockSize);

        Assert.Equal(Bits(expected), Bits(Dequantize(packed, absmax, count, blockSize, isa)));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ValueOnAMidpoint_TakesTheLowerCode(string path)
    {
        var isa = Enum.Parse<Nf4Cpu.Instructions>(path);
        // A block whose absmax is 1 scales by exactly 1, so each value sits exactly on midpoint k.
        var input = new float[64];
        var midpoints = Nf4Codebook.Midpoints;
        for (var i = 0; i < input.Length; i++)
        {
            input[i] = i == 0 ? 1f : midpoints[i % midpoints.Length];
        }

        var (packed, _) = Quantize(input, 64, isa);

        for (var i = 1; i < input.Length; i++)
        {
            var code = (i & 1) == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 0xF;
            Assert.Equal(i % midpoints.Length, code);
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void SpecialValues_QuantizeLikeTheTorchOpsPath(string path)
    {
        var isa = Enum.Parse<Nf4Cpu.Instructions>(path);
        // Blocks of 32: NaN inside, +inf inside, all zeros, subnormals only, negative zero and huge values.
        var input = new float[32 * 6];
        var random = new Random(3);
        for (var i = 0; i < input.Length; i++)
        {
            input[i] = (float)(random.NextDouble() - 0.5);
        }

        input[5] = float.NaN;
        input[40] = float.PositiveInfinity;
        Array.Clear(input, 64, 32);
        for (var i = 96; i < 128; i++)
        {
            input[i] = float.Epsilon * (i - 100);
        }

        input[130] = -0f;
        input[140] = 3e38f;
        input[141] = -3e38f;
        input[160] = float.NegativeInfinity;
        using var tensor = torch.tensor(input);
        var (expectedPacked, expectedAbsmax) = Nf4TorchOps.Quantize4Bit(tensor, 32);
        using (expectedPacked)
        using (expectedAbsmax)
        {
            var (packed, absmax) = Quantize(input, 32, isa);

            Assert.Equal(expectedPacked.bytes.ToArray(), packed);
            Assert.Equal(Bits(MemoryMarshal.Cast<byte, float>(expectedAbsmax.bytes).ToArray()), Bits(absmax));
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void BFloat16Output_IsTheFp32ResultRoundedAsTorchRoundsIt(string path)
    {
        var isa = Enum.Parse<Nf4Cpu.Instructions>(path);
        const int count = 64 * 100 + 33;
        var (packed, absmax) = Quantize(RandomNormal(count, seed: 11), 64, isa);
        var fp32 = Dequantize(packed, absmax, count, 64, isa);
        using var expected = torch.tensor(fp32).to(torch.ScalarType.BFloat16);
        var output = new ushort[count];

        unsafe
        {
            fixed (byte* p = packed)
            fixed (float* a = absmax)
            fixed (ushort* o = output)
            {
                Nf4Cpu.DequantizeParallel((IntPtr)p, (IntPtr)a, (IntPtr)o, Nf4Cpu.TargetKind.BFloat16, count, 64, isa);
            }
        }

        Assert.Equal(MemoryMarshal.Cast<byte, ushort>(expected.bytes).ToArray(), output);
    }

    [Fact]
    public void HalfOutput_IsTheFp32ResultRoundedAsTorchRoundsIt()
    {
        const int count = 64 * 50 + 7;
        var input = RandomNormal(count, seed: 12);
        var (packed, absmax) = Quantize(input, 64, Nf4Cpu.Best);
        var fp32 = new float[count];
        Nf4Cpu.Dequantize(packed, absmax, fp32, 64);
        using var expected = torch.tensor(fp32).to(torch.ScalarType.Float16);
        var output = new Half[count];

        Nf4Cpu.Dequantize(packed, absmax, output, 64);

        Assert.Equal(MemoryMarshal.Cast<byte, ushort>(expected.bytes).ToArray(), MemoryMarshal.Cast<Half, ushort>(output).ToArray());
    }

    [Fact]
    public void BFloat16Input_QuantizesLikeItsExactFp32Values()
    {
        const int count = 64 * 40 + 9;
        var bits = RandomNormal(count, seed: 13).Select(Nf4Cpu.ToBFloat16Bits).ToArray();
        var asFloat = bits.Select(Nf4Cpu.FromBFloat16Bits).ToArray();
        var packed = new byte[Nf4BlockSizes.PackedLength(count)];
        var absmax = new float[Nf4BlockSizes.BlockCount(count, 64)];

        Nf4Cpu.QuantizeBFloat16(bits, packed, absmax, 64);

        var (expectedPacked, expectedAbsmax) = Quantize(asFloat, 64, Nf4Cpu.Best);
        Assert.Equal(expectedPacked, packed);
        Assert.Equal(expectedAbsmax, absmax);
    }

    [Fact]
    public void ToBFloat16Bits_RoundsToNearestEvenLikeTorch()
    {
        var values = new[] { 1f, 1.00390625f, 1.01171875f, -2.5f, 3.4e38f, 1e-40f, float.PositiveInfinity, 0.1f, -0f };
        using var expected = torch.tensor(values).to(torch.ScalarType.BFloat16);

        Assert.Equal(MemoryMarshal.Cast<byte, ushort>(expected.bytes).ToArray(), values.Select(Nf4Cpu.ToBFloat16Bits).ToArray());
    }

    [Theory]
    [InlineData(16)]
    [InlineData(48)]
    [InlineData(8192)]
    public void Quantize_RejectsABlockSizeNF4DoesNotAllow(int blockSize)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Nf4Cpu.Quantize(new float[64], new byte[32], new float[1], blockSize));
        Assert.Equal("blockSize", error.ParamName);
    }

    [Fact]
    public void Quantize_RejectsAPackedBufferOfTheWrongLength()
    {
        var error = Assert.Throws<ArgumentException>(() => Nf4Cpu.Quantize(new float[65], new byte[32], new float[2], 64));
        Assert.Equal("packed", error.ParamName);
        Assert.Contains("33", error.Message);
    }

    [Fact]
    public void Dequantize_RejectsAnAbsmaxBufferOfTheWrongLength()
    {
        var error = Assert.Throws<ArgumentException>(() => Nf4Cpu.Dequantize(new byte[64], new float[1], new float[128], 64));
        Assert.Equal("absmax", error.ParamName);
    }

    internal static float[] RandomNormal(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            // Box-Muller; a few outliers make the absmax differ from block to block.
            var u = 1.0 - random.NextDouble();
            var v = random.NextDouble();
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v) * (i % 97 == 0 ? 10 : 1));
        }

        return values;
    }

    private static unsafe (byte[] Packed, float[] Absmax) Quantize(float[] input, int blockSize, Nf4Cpu.Instructions isa)
    {
        var packed = new byte[Nf4BlockSizes.PackedLength(input.Length)];
        var absmax = new float[Nf4BlockSizes.BlockCount(input.Length, blockSize)];
        fixed (float* i = input)
        fixed (byte* p = packed)
        fixed (float* a = absmax)
        {
            Nf4Cpu.QuantizeParallel((IntPtr)i, Nf4Cpu.SourceKind.Float32, input.Length, (IntPtr)p, (IntPtr)a, blockSize, isa);
        }

        return (packed, absmax);
    }

    private static unsafe float[] Dequantize(byte[] packed, float[] absmax, int count, int blockSize, Nf4Cpu.Instructions isa)
    {
        var output = new float[count];
        fixed (byte* p = packed)
        fixed (float* a = absmax)
        fixed (float* o = output)
        {
            Nf4Cpu.DequantizeParallel((IntPtr)p, (IntPtr)a, (IntPtr)o, Nf4Cpu.TargetKind.Float32, count, blockSize, isa);
        }

        return output;
    }

    private static uint[] Bits(float[] values) => values.Select(BitConverter.SingleToUInt32Bits).ToArray();
}
