using System.Buffers.Binary;
using System.Text;
using LoQT.SafeTensors;

namespace LoQT.Tests.SafeTensors;

public sealed class SafeTensorsWriterTests : IDisposable
{
    private readonly ScratchFolder _scratch = new();

    public static TheoryData<SafeTensorDType> AllDTypes() => new(SafeTensorDTypes.All);

    public void Dispose() => _scratch.Dispose();

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void RoundTrip_KeepsBytesDTypeAndShape(SafeTensorDType dtype)
    {
        var data = RandomBytes(3 * 5 * dtype.ElementSize(), seed: (int)dtype);
        var path = _scratch.File("t.safetensors");
        using (var writer = new SafeTensorsWriter(path))
        {
            writer.Add("x", dtype, [3, 5], data);
            writer.Complete();
        }

        using var file = SafeTensorsFile.Open(path);
        var info = file.GetInfo("x");
        Assert.Equal(dtype, info.DType);
        Assert.Equal([3L, 5L], info.Shape);
        Assert.Equal(15, info.ElementCount);
        Assert.Equal(data, file.GetBytes("x").ToArray());
    }

    [Fact]
    public void RoundTrip_KeepsMetadata()
    {
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\" <b>" };
        var path = _scratch.File("m.safetensors");
        using (var writer = new SafeTensorsWriter(path, metadata))
        {
            writer.Add("x", SafeTensorDType.U8, [1], [7]);
            writer.Complete();
        }

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(metadata, file.Metadata);
    }

    [Fact]
    public void RoundTrip_WithoutMetadata_HasEmptyMetadata()
    {
        var path = WriteFile(("x", SafeTensorDType.U8, [1], [7]));
        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Metadata);
        Assert.DoesNotContain("__metadata__", HeaderJson(path));
    }

    [Fact]
    public void RoundTrip_KeepsScalarsAndEmptyTensors()
    {
        var path = WriteFile(
            ("scalar", SafeTensorDType.F32, [], BitConverter.GetBytes(2.5f)),
            ("empty", SafeTensorDType.F16, [0, 4], []),
            ("after", SafeTensorDType.I8, [2], [1, 2]));

        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.GetInfo("scalar").Shape);
        Assert.Equal(1, file.GetInfo("scalar").ElementCount);
        Assert.Equal(2.5f, BitConverter.ToSingle(file.GetBytes("scalar")));
        Assert.Equal([0L, 4L], file.GetInfo("empty").Shape);
        Assert.Equal(0, file.GetBytes("empty").Length);
        Assert.Equal(new byte[] { 1, 2 }, file.GetBytes("after").ToArray());
    }

    [Fact]
    public void Header_ListsTensorsInInsertionOrderWithPackedOffsets()
    {
        var path = WriteFile(
            ("zeta", SafeTensorDType.F32, [2], new byte[8]),
            ("alpha", SafeTensorDType.U8, [3], new byte[3]),
            ("mid", SafeTensorDType.I64, [1], new byte[8]));

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(["zeta", "alpha", "mid"], file.Tensors.Select(t => t.Name));
        Assert.Equal([0L, 8L, 11L], file.Tensors.Select(t => t.DataOffset));
        var json = HeaderJson(path);
        Assert.True(json.IndexOf("zeta", StringComparison.Ordinal) < json.IndexOf("alpha", StringComparison.Ordinal));
    }

    [Fact]
    public void Header_IsPaddedWithSpacesToAMultipleOfEight()
    {
        var path = WriteFile(("x", SafeTensorDType.U8, [1], [42]));
        var bytes = File.ReadAllBytes(path);
        var length = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var json = Encoding.UTF8.GetString(bytes, 8, (int)length);

        Assert.Equal(0, length % 8);
        Assert.EndsWith("}", json.TrimEnd(' '));
        Assert.Equal(json.TrimEnd(' ').Length, json.TrimEnd().Length); // padding is spaces only
        Assert.Equal(8 + length + 1, bytes.Length);
        Assert.Equal(42, bytes[^1]);
    }

    [Fact]
    public void Header_MetadataComesAfterTheTensorsAsInTheReferenceWriter()
    {
        var path = _scratch.File("m.safetensors");
        using (var writer = new SafeTensorsWriter(path, new Dictionary<string, string> { ["format"] = "pt" }))
        {
            writer.Add("x", SafeTensorDType.U8, [1], [1]);
            writer.Complete();
        }

        Assert.Equal("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"__metadata__\":{\"format\":\"pt\"}}", HeaderJson(path).TrimEnd(' '));
    }

    [Fact]
    public void Add_RejectsDuplicateNameAndNamesIt()
    {
        using var writer = new SafeTensorsWriter(_scratch.File("d.safetensors"));
        writer.Add("layer.weight", SafeTensorDType.U8, [1], [1]);
        var error = Assert.Throws<ArgumentException>(() => writer.Add("layer.weight", SafeTensorDType.U8, [1], [2]));
        Assert.Contains("layer.weight", error.Message);
    }

    [Fact]
    public void Add_RejectsTheMetadataKeyAsAName()
    {
        using var writer = new SafeTensorsWriter(_scratch.File("d.safetensors"));
        Assert.Throws<ArgumentException>(() => writer.Add("__metadata__", SafeTensorDType.U8, [1], [1]));
    }

    [Fact]
    public void Add_RejectsDataWhoseLengthDoesNotMatchTheShape()
    {
        using var writer = new SafeTensorsWriter(_scratch.File("d.safetensors"));
        var error = Assert.Throws<ArgumentException>(() => writer.Add("w", SafeTensorDType.F32, [2, 2], new byte[12]));
        Assert.Contains("'w'", error.Message);
        Assert.Contains("16", error.Message);
    }

    [Fact]
    public void Add_RejectsNegativeDimensions()
    {
        using var writer = new SafeTensorsWriter(_scratch.File("d.safetensors"));
        Assert.Throws<ArgumentException>(() => writer.Add("w", SafeTensorDType.U8, [-1], []));
    }

    [Fact]
    public void Add_FromStream_CopiesExactlyTheShapesBytes()
    {
        var data = RandomBytes(6 * 2, seed: 3);
        var path = _scratch.File("s.safetensors");
        using (var writer = new SafeTensorsWriter(path))
        {
            using var source = new MemoryStream([.. data, 99, 99]);
            writer.Add("x", SafeTensorDType.I16, [6], source);
            writer.Complete();
        }

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(data, file.GetBytes("x").ToArray());
    }

    [Fact]
    public void Add_FromStreamThatEndsEarly_FailsAndAddsNothing()
    {
        var path = _scratch.File("s.safetensors");
        using (var writer = new SafeTensorsWriter(path))
        {
            writer.Add("before", SafeTensorDType.U8, [2], [1, 2]);
            var error = Assert.Throws<ArgumentException>(() => writer.Add("short", SafeTensorDType.F32, [4], new MemoryStream(new byte[10])));
            Assert.Contains("short", error.Message);
            writer.Add("after", SafeTensorDType.U8, [1], [3]);
            writer.Complete();
        }

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(["before", "after"], file.Tensors.Select(t => t.Name));
        Assert.Equal(new byte[] { 3 }, file.GetBytes("after").ToArray());
    }

    [Fact]
    public void DisposeWithoutComplete_LeavesNoTargetAndNoTemporaryFiles()
    {
        using (var writer = new SafeTensorsWriter(_scratch.File("never.safetensors")))
        {
            writer.Add("x", SafeTensorDType.U8, [4], [1, 2, 3, 4]);
        }

        Assert.Empty(_scratch.FileNames());
    }

    [Fact]
    public void ExistingTarget_StaysUntouchedUntilComplete()
    {
        var path = _scratch.File("t.safetensors");
        File.WriteAllText(path, "previous contents");
        using var writer = new SafeTensorsWriter(path);
        writer.Add("x", SafeTensorDType.U8, [1], [1]);

        Assert.Equal("previous contents", File.ReadAllText(path));
        writer.Complete();
        using var file = SafeTensorsFile.Open(path);
        Assert.True(file.Contains("x"));
    }

    [Fact]
    public void Complete_LeavesOnlyTheTarget()
    {
        WriteFile(("x", SafeTensorDType.U8, [1], [1]));
        Assert.Equal(["t.safetensors"], _scratch.FileNames());
    }

    [Fact]
    public void Add_AfterComplete_Throws()
    {
        using var writer = new SafeTensorsWriter(_scratch.File("t.safetensors"));
        writer.Complete();
        Assert.Throws<InvalidOperationException>(() => writer.Add("x", SafeTensorDType.U8, [1], [1]));
    }

    [Fact]
    public void Complete_WithNoTensors_WritesAValidEmptyFile()
    {
        var path = WriteFile();
        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Tensors);
    }

    internal static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private string WriteFile(params (string Name, SafeTensorDType DType, long[] Shape, byte[] Data)[] tensors)
    {
        var path = _scratch.File("t.safetensors");
        using var writer = new SafeTensorsWriter(path);
        foreach (var (name, dtype, shape, data) in tensors)
        {
            writer.Add(name, dtype, shape, data);
        }

        writer.Complete();
        return path;
    }

    private static string HeaderJson(string path)
    {
        var bytes = File.ReadAllBytes(path);
        return Encoding.UTF8.GetString(bytes, 8, (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes));
    }
}
