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

    [Fact]
    public void ReadTensor_GivesTheMappedPagesBack_SoTheyStopCountingAsResident()
    {
        var path = WriteLarge("large.safetensors");
        using var file = SafeTensorsFile.Open(path);

        using (var tensor = file.ReadTensor("big"))
        {
            Assert.Equal(LargeBytes / 4, tensor.numel());
        }

        // Only the header's page (and the partial last page) may stay; the 16 MiB of data must not.
        Assert.InRange(MappedResidentBytes(path), 0, 64 << 10);
    }

    [Fact]
    public void OpenRead_GivesThePagesBackWhenTheStreamIsDisposed()
    {
        var path = WriteLarge("streamed.safetensors");
        using var file = SafeTensorsFile.Open(path);

        using (var stream = file.OpenRead("big"))
        {
            stream.CopyTo(Stream.Null);
            Assert.True(MappedResidentBytes(path) >= LargeBytes / 2, "reading through the mapping makes its pages resident");
        }

        Assert.InRange(MappedResidentBytes(path), 0, 64 << 10);
    }

    private const int LargeBytes = 16 << 20;

    private string WriteLarge(string name)
    {
        var path = _scratch.File(name);
        using var writer = new SafeTensorsWriter(path);
        writer.Add("big", SafeTensorDType.F32, [LargeBytes / 4], SafeTensorsWriterTests.RandomBytes(LargeBytes, seed: 3));
        writer.Complete();
        return path;
    }

    /// <summary>The resident bytes of this process's mappings of <paramref name="path"/> (the Rss lines of /proc/self/smaps).</summary>
    private static long MappedResidentBytes(string path)
    {
        long total = 0;
        var inMapping = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            if (line.Length > 0 && char.IsAsciiHexDigit(line[0]) && line.Contains('-', StringComparison.Ordinal))
            {
                inMapping = line.EndsWith(" " + path, StringComparison.Ordinal);
            }
            else if (inMapping && line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                total += long.Parse(line[4..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }

        return total;
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
