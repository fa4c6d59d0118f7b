using LoQT.SafeTensors;
using TorchSharp;

namespace LoQT.Tests.SafeTensors;

/// <summary>Reading into and writing from torch tensors.</summary>
public sealed class SafeTensorsTorchTests : IDisposable
{
    private readonly ScratchFolder _scratch = new();

    public static TheoryData<SafeTensorDType> AllDTypes() => new(SafeTensorDTypes.All);

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public void ReadTensor_ReturnsTheFilesDTypeShapeAndValues()
    {
        float[] values = [1.5f, -2f, 0.25f, 1e-3f, 7f, -0f];
        var path = Write(w => w.Add("x", SafeTensorDType.F32, [2, 3], System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));
        using var file = SafeTensorsFile.Open(path);
        using var tensor = file.ReadTensor("x");

        Assert.Equal(torch.ScalarType.Float32, tensor.dtype);
        Assert.Equal([2L, 3L], tensor.shape);
        Assert.Equal(values, tensor.data<float>().ToArray());
    }

    [Fact]
    public void ReadTensor_F16_ConvertsToFloatExactly()
    {
        // IEEE binary16 bit patterns: 1.5, -2, 65504 (largest finite), 2^-24 (smallest subnormal).
        ushort[] bits = [0x3E00, 0xC000, 0x7BFF, 0x0001];
        var path = Write(w => w.Add("h", SafeTensorDType.F16, [4], System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan())));
        using var file = SafeTensorsFile.Open(path);
        using var tensor = file.ReadTensor("h", torch.ScalarType.Float32);

        Assert.Equal(torch.ScalarType.Float32, tensor.dtype);
        Assert.Equal([1.5f, -2f, 65504f, MathF.Pow(2, -24)], tensor.data<float>().ToArray());
    }

    [Fact]
    public void ReadTensor_BF16_ConvertsToFloatExactly()
    {
        // bfloat16 is the upper half of a binary32: 0x3FC0 = 1.5, 0xC000 = -2, 0x4049 = 3.140625, 0x7F7F = 3.3895314e38.
        ushort[] bits = [0x3FC0, 0xC000, 0x4049, 0x7F7F];
        var path = Write(w => w.Add("b", SafeTensorDType.BF16, [2, 2], System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan())));
        using var file = SafeTensorsFile.Open(path);
        using var tensor = file.ReadTensor("b", torch.ScalarType.Float32);

        float[] expected = bits.Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray();
        Assert.Equal([1.5f, -2f, 3.140625f], expected[..3]);
        Assert.Equal(expected, tensor.data<float>().ToArray());
    }

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void AddTensor_ThenReadTensor_RoundTripsEveryDType(SafeTensorDType dtype)
    {
        using var source = torch.arange(0, 12, dtype: torch.ScalarType.Int64).remainder(2 * (int)dtype + 2).reshape(3, 4).to_type(dtype.ToScalarType());
        var path = Write(w => w.Add("t", source));
        using var file = SafeTensorsFile.Open(path);
        using var read = file.ReadTensor("t");

        Assert.Equal(dtype, file.GetInfo("t").DType);
        Assert.Equal(source.dtype, read.dtype);
        Assert.Equal(source.shape, read.shape);
        Assert.Equal(source.bytes.ToArray(), read.bytes.ToArray());
    }

    [Fact]
    public void AddTensor_WritesNonContiguousTensorsInRowMajorOrder()
    {
        using var matrix = torch.arange(6, dtype: torch.ScalarType.Float32).reshape(2, 3);
        using var transposed = matrix.t();
        Assert.False(transposed.is_contiguous());
        var path = Write(w => w.Add("t", transposed));

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal([3L, 2L], file.GetInfo("t").Shape);
        Assert.Equal([0f, 3f, 1f, 4f, 2f, 5f], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.GetBytes("t")).ToArray());
    }

    [Fact]
    public void AddTensor_LeavesTheCallersTensorUsable()
    {
        using var tensor = torch.ones(4);
        Write(w => w.Add("t", tensor));
        Assert.Equal(4f, tensor.sum().item<float>());
    }

    [Fact]
    public void AddTensor_RejectsDTypesWithoutASafetensorsCounterpart()
    {
        using var complex = torch.zeros(2, dtype: torch.ScalarType.ComplexFloat32);
        using var writer = new SafeTensorsWriter(_scratch.File("c.safetensors"));
        Assert.Throws<ArgumentException>(() => writer.Add("c", complex));
    }

    [Fact]
    public void ReadTensor_OwnsItsMemoryAfterTheFileIsClosed()
    {
        var path = Write(w => w.Add("x", SafeTensorDType.I32, [2], System.Runtime.InteropServices.MemoryMarshal.AsBytes(new[] { 11, -7 }.AsSpan())));
        torch.Tensor tensor;
        using (var file = SafeTensorsFile.Open(path))
        {
            tensor = file.ReadTensor("x");
        }

        using (tensor)
        {
            Assert.Equal([11, -7], tensor.data<int>().ToArray());
        }
    }

    [Fact]
    public void ReadTensor_OfAScalar_HasNoDimensions()
    {
        var path = Write(w => w.Add("s", SafeTensorDType.F64, [], BitConverter.GetBytes(-0.125)));
        using var file = SafeTensorsFile.Open(path);
        using var tensor = file.ReadTensor("s");
        Assert.Empty(tensor.shape);
        Assert.Equal(-0.125, tensor.item<double>());
    }

    [Fact]
    public void ReadTensor_OfAnEmptyTensor_KeepsItsShape()
    {
        var path = Write(w => w.Add("e", SafeTensorDType.BF16, [3, 0], []));
        using var file = SafeTensorsFile.Open(path);
        using var tensor = file.ReadTensor("e");
        Assert.Equal([3L, 0L], tensor.shape);
    }

    [Fact]
    public unsafe void ChunkedCopies_MatchSingleCopies()
    {
        // Chunks of 12 bytes (3 floats) over 10 elements exercise the >2 GiB path, including a short last chunk.
        using var source = torch.arange(10, dtype: torch.ScalarType.Float32).mul(1.25f);
        using var whole = new MemoryStream();
        using var chunked = new MemoryStream();
        TensorBytes.WriteTo(source, whole);
        TensorBytes.WriteTo(source, chunked, chunkBytes: 12);
        Assert.Equal(whole.ToArray(), chunked.ToArray());

        fixed (byte* bytes = whole.ToArray())
        {
            using var read = TensorBytes.Create(bytes, SafeTensorDType.F32, [2, 5], chunkBytes: 12);
            Assert.Equal(source.data<float>().ToArray(), read.data<float>().ToArray());
        }
    }

    private string Write(Action<SafeTensorsWriter> add)
    {
        var path = _scratch.File("t.safetensors");
        using var writer = new SafeTensorsWriter(path);
        add(writer);
        writer.Complete();
        return path;
    }
}
