using LoQT.SafeTensors;

namespace LoQT.Tests.SafeTensors;

public sealed class SafeTensorsFileTests : IDisposable
{
    private readonly ScratchFolder _scratch = new();

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public void GetInfo_UnknownName_ThrowsKeyNotFoundNamingTensorAndFile()
    {
        using var file = SafeTensorsFile.Open(WriteTwo());
        var error = Assert.Throws<KeyNotFoundException>(() => file.GetInfo("missing.weight"));
        Assert.Contains("missing.weight", error.Message);
        Assert.Contains(file.Path, error.Message);
    }

    [Fact]
    public void Contains_IsTrueOnlyForTensorsInTheFile()
    {
        using var file = SafeTensorsFile.Open(WriteTwo());
        Assert.True(file.Contains("a"));
        Assert.False(file.Contains("c"));
        Assert.False(file.Contains("__metadata__"));
    }

    [Fact]
    public void GetInfo_OffsetsAreRelativeToTheDataSection()
    {
        using var file = SafeTensorsFile.Open(WriteTwo());
        var b = file.GetInfo("b");
        var raw = File.ReadAllBytes(file.Path);
        Assert.Equal(raw.AsSpan((int)(file.DataStart + b.DataOffset), (int)b.ByteLength).ToArray(), file.GetBytes("b").ToArray());
    }

    [Fact]
    public void OpenRead_StreamsTheTensorsBytes()
    {
        using var file = SafeTensorsFile.Open(WriteTwo());
        using var stream = file.OpenRead("b");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        Assert.Equal(file.GetBytes("b").ToArray(), copy.ToArray());
    }

    [Fact]
    public void GetBytes_AfterDispose_Throws()
    {
        var file = SafeTensorsFile.Open(WriteTwo());
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes("a").Length);
    }

    [Fact]
    public void Open_DoesNotLockTheFileAgainstOtherReaders()
    {
        var path = WriteTwo();
        using var first = SafeTensorsFile.Open(path);
        using var second = SafeTensorsFile.Open(path);
        Assert.Equal(first.GetBytes("a").ToArray(), second.GetBytes("a").ToArray());
    }

    private string WriteTwo()
    {
        var path = _scratch.File("two.safetensors");
        using var writer = new SafeTensorsWriter(path, new Dictionary<string, string> { ["format"] = "pt" });
        writer.Add("a", SafeTensorDType.F32, [2, 3], SafeTensorsWriterTests.RandomBytes(24, seed: 1));
        writer.Add("b", SafeTensorDType.BF16, [5], SafeTensorsWriterTests.RandomBytes(10, seed: 2));
        writer.Complete();
        return path;
    }
}
