using System.Runtime.InteropServices;
using LoQT.Quantization;
using TorchSharp;

namespace LoQT.Tests.Quantization;

/// <summary>Every case of fixtures/nf4, byte for byte, through the torch-ops path, the CPU path and the span API.</summary>
public class Nf4FixtureTests
{
    private static Nf4Fixture Fixture => Nf4Fixture.Instance;

    public static TheoryData<int, Nf4Kernel> CasesByKernel
    {
        get
        {
            var data = new TheoryData<int, Nf4Kernel>();
            foreach (var id in Fixture.CaseIds)
            {
                data.Add(id, Nf4Kernel.Auto);
                data.Add(id, Nf4Kernel.TorchOps);
            }

            return data;
        }
    }

    [Fact]
    public void Codebook_EqualsTheFixtureCode()
    {
        Assert.Equal(Fixture.Floats("nf4_code"), Nf4Codebook.Values.ToArray());
    }

    [Fact]
    public void SignedDynamicMap_EqualsTheFixtureMap()
    {
        Assert.Equal(Bits(Fixture.Floats("dynamic_map")), Bits(DynamicQuantMap.Signed));
    }

    [Theory]
    [MemberData(nameof(CasesByKernel))]
    public void Quantize_ProducesTheExpectedPackedBytesAndAbsmax(int id, Nf4Kernel kernel)
    {
        using var input = Fixture.Tensor($"case{id}.input");
        using var q = Nf4Tensor.Quantize(input, 64, doubleQuant: false, kernel);

        Assert.Equal(Fixture.Shape($"case{id}.packed"), q.Packed.shape);
        Assert.Equal(Fixture.Bytes($"case{id}.packed").ToArray(), BytesOf(q.Packed));
        Assert.Equal(Fixture.Bytes($"case{id}.absmax").ToArray(), BytesOf(q.Absmax));
    }

    [Theory]
    [MemberData(nameof(CasesByKernel))]
    public void Dequantize_ProducesTheExpectedValues(int id, Nf4Kernel kernel)
    {
        using var input = Fixture.Tensor($"case{id}.input");
        using var q = Nf4Tensor.Quantize(input, 64, doubleQuant: false, kernel);
        using var values = q.Dequantize(torch.ScalarType.Float32, kernel);

        Assert.Equal(Fixture.Shape($"case{id}.dequant"), values.shape);
        Assert.Equal(Fixture.Bytes($"case{id}.dequant").ToArray(), BytesOf(values));
    }

    [Theory]
    [MemberData(nameof(CasesByKernel))]
    public void DoubleQuantize_ProducesTheExpectedCodesNestedAbsmaxAndOffset(int id, Nf4Kernel kernel)
    {
        using var input = Fixture.Tensor($"case{id}.input");
        using var q = Nf4Tensor.Quantize(input, 64, doubleQuant: true, kernel);

        Assert.True(q.IsDoubleQuantized);
        Assert.Equal(Fixture.Bytes($"case{id}.packed").ToArray(), BytesOf(q.Packed));
        Assert.Equal(Fixture.Bytes($"case{id}.dq.absmax").ToArray(), BytesOf(q.Absmax));
        Assert.Equal(Fixture.Bytes($"case{id}.dq.nested_absmax").ToArray(), BytesOf(q.NestedAbsmax!));
        Assert.Equal(BitConverter.SingleToUInt32Bits(Fixture.Floats($"case{id}.dq.nested_offset")[0]), BitConverter.SingleToUInt32Bits(q.NestedOffset));
    }

    [Theory]
    [MemberData(nameof(CasesByKernel))]
    public void DoubleQuantizedDequantize_ProducesTheExpectedValues(int id, Nf4Kernel kernel)
    {
        using var input = Fixture.Tensor($"case{id}.input");
        using var q = Nf4Tensor.Quantize(input, 64, doubleQuant: true, kernel);
        using var values = q.Dequantize(torch.ScalarType.Float32, kernel);

        Assert.Equal(Fixture.Bytes($"case{id}.dq.dequant").ToArray(), BytesOf(values));
    }

    [Theory]
    [MemberData(nameof(Nf4Fixture.Cases), MemberType = typeof(Nf4Fixture))]
    public void SpanQuantize_ProducesTheExpectedPackedBytesAndAbsmax(int id)
    {
        var name = $"case{id}.input";
        var count = (int)Fixture.Shape(name).Aggregate(1L, (a, b) => a * b);
        var packed = new byte[Nf4BlockSizes.PackedLength(count)];
        var absmax = new float[Nf4BlockSizes.BlockCount(count, 64)];
        switch (Fixture.DType(name))
        {
            case "F32":
                Nf4Cpu.Quantize(MemoryMarshal.Cast<byte, float>(Fixture.Bytes(name)), packed, absmax, 64);
                break;
            case "BF16":
                Nf4Cpu.QuantizeBFloat16(MemoryMarshal.Cast<byte, ushort>(Fixture.Bytes(name)), packed, absmax, 64);
                break;
            default:
                Nf4Cpu.Quantize(MemoryMarshal.Cast<byte, Half>(Fixture.Bytes(name)), packed, absmax, 64);
                break;
        }

        Assert.Equal(Fixture.Bytes($"case{id}.packed").ToArray(), packed);
        Assert.Equal(Fixture.Bytes($"case{id}.absmax").ToArray(), MemoryMarshal.AsBytes(absmax.AsSpan()).ToArray());
    }

    [Theory]
    [MemberData(nameof(Nf4Fixture.Cases), MemberType = typeof(Nf4Fixture))]
    public void SpanDequantize_ProducesTheExpectedValues(int id)
    {
        var expected = Fixture.Floats($"case{id}.dequant");
        var output = new float[expected.Length];

        Nf4Cpu.Dequantize(Fixture.Bytes($"case{id}.packed"), Fixture.Floats($"case{id}.absmax"), output, 64);

        Assert.Equal(Bits(expected), Bits(output));
    }

    [Theory]
    [MemberData(nameof(Nf4Fixture.Cases), MemberType = typeof(Nf4Fixture))]
    public void FromFixtureParts_DequantizesTheDoubleQuantizedCaseExactly(int id)
    {
        using var packed = Fixture.Tensor($"case{id}.packed");
        using var codes = Fixture.Tensor($"case{id}.dq.absmax");
        using var nested = Fixture.Tensor($"case{id}.dq.nested_absmax");
        using var q = Nf4Tensor.FromParts(
            packed, codes, Fixture.Shape($"case{id}.dequant"), 64, torch.ScalarType.Float32, nested, Fixture.Floats($"case{id}.dq.nested_offset")[0]);
        using var values = q.Dequantize();

        Assert.Equal(Fixture.Bytes($"case{id}.dq.dequant").ToArray(), BytesOf(values));
    }

    private static byte[] BytesOf(torch.Tensor t)
    {
        using var contiguous = t.contiguous();
        return contiguous.bytes.ToArray();
    }

    private static uint[] Bits(float[] values) => values.Select(BitConverter.SingleToUInt32Bits).ToArray();
}
