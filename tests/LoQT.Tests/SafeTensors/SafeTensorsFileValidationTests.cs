using LoQT.SafeTensors;

namespace LoQT.Tests.SafeTensors;

/// <summary>Malformed files are rejected on open with a message that names the file and, where one is at fault, the tensor.</summary>
public sealed class SafeTensorsFileValidationTests : IDisposable
{
    private readonly ScratchFolder _scratch = new();

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public void Open_RejectsFileShorterThanTheLengthPrefix()
    {
        var path = _scratch.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var error = Reject(path);
        Assert.Contains("3 bytes", error.Message);
    }

    [Fact]
    public void Open_RejectsEmptyFile()
    {
        var path = _scratch.File("empty.safetensors");
        File.WriteAllBytes(path, []);
        Reject(path);
    }

    [Fact]
    public void Open_RejectsAFileTruncatedInsideItsData_NamingTheLastTensor()
    {
        var path = WriteTwoTensors("cut.safetensors");
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(stream.Length - 5);
        }

        var error = Reject(path);
        Assert.Contains("tensor 'second'", error.Message);
        Assert.Contains("truncated?", error.Message);
    }

    [Fact]
    public void Open_RejectsAFileTruncatedInsideItsHeader()
    {
        var path = WriteTwoTensors("cut-header.safetensors");
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(40);
        }

        var error = Reject(path);
        Assert.Contains("runs past the end of the file (40 bytes; truncated?)", error.Message);
    }

    [Fact]
    public void Open_RejectsHeaderLengthPastEndOfFile()
    {
        var path = _scratch.WriteRaw("past.safetensors", "{}", headerLength: 1000);
        var error = Reject(path);
        Assert.Contains("1000", error.Message);
        Assert.Contains("past the end of the file", error.Message);
    }

    [Fact]
    public void Open_RejectsAbsurdHeaderLength()
    {
        var path = _scratch.WriteRaw("huge.safetensors", "{}", headerLength: 200_000_000);
        var error = Reject(path);
        Assert.Contains("limit", error.Message);
    }

    [Fact]
    public void Open_RejectsInvalidJson()
    {
        var error = Reject(_scratch.WriteRaw("bad.safetensors", "{\"x\": {\"dtype\": "));
        Assert.Contains("not valid JSON", error.Message);
    }

    [Fact]
    public void Open_RejectsJsonThatIsNotAnObject()
    {
        var error = Reject(_scratch.WriteRaw("array.safetensors", "[1, 2]   "));
        Assert.Contains("not a JSON object", error.Message);
    }

    [Fact]
    public void Open_RejectsNonSpaceContentAfterTheHeaderObject()
    {
        Reject(_scratch.WriteRaw("trail.safetensors", "{}  x"));
    }

    [Fact]
    public void Open_AcceptsSpacePaddingAfterTheHeaderObject()
    {
        using var file = SafeTensorsFile.Open(_scratch.WriteRaw("padded.safetensors", "{}      "));
        Assert.Empty(file.Tensors);
    }

    [Fact]
    public void Open_RejectsUnknownDTypeNamingTensorAndDType()
    {
        var error = Reject(Single("w", "\"F8_E4M3\"", "[2]", "[0, 2]", 2));
        Assert.Contains("'w'", error.Message);
        Assert.Contains("F8_E4M3", error.Message);
    }

    [Fact]
    public void Open_RejectsNegativeDimension()
    {
        var error = Reject(Single("w", "\"U8\"", "[-2]", "[0, 2]", 2));
        Assert.Contains("'w'", error.Message);
        Assert.Contains("-2", error.Message);
    }

    [Fact]
    public void Open_RejectsFractionalDimension()
    {
        var error = Reject(Single("w", "\"U8\"", "[1.5]", "[0, 2]", 2));
        Assert.Contains("1.5", error.Message);
    }

    [Fact]
    public void Open_RejectsShapeThatIsNotAnArray()
    {
        var error = Reject(Single("w", "\"U8\"", "\"2\"", "[0, 2]", 2));
        Assert.Contains("shape", error.Message);
    }

    [Fact]
    public void Open_RejectsShapeWhoseElementCountOverflows()
    {
        var error = Reject(Single("w", "\"F32\"", "[4611686018427387904, 4]", "[0, 2]", 2));
        Assert.Contains("'w'", error.Message);
    }

    [Fact]
    public void Open_RejectsMissingField()
    {
        var error = Reject(_scratch.WriteRaw("m.safetensors", "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 1]}}", [0]));
        Assert.Contains("missing dtype", error.Message);
    }

    [Fact]
    public void Open_RejectsDataOffsetsThatAreNotAPair()
    {
        var error = Reject(Single("w", "\"U8\"", "[2]", "[0, 1, 2]", 2));
        Assert.Contains("data_offsets", error.Message);
    }

    [Fact]
    public void Open_RejectsDataOffsetsThatEndBeforeTheyBegin()
    {
        var error = Reject(Single("w", "\"U8\"", "[0]", "[2, 1]", 2));
        Assert.Contains("end before they begin", error.Message);
    }

    [Fact]
    public void Open_RejectsDataOffsetsPastTheDataSection()
    {
        var error = Reject(Single("w", "\"U8\"", "[4]", "[0, 4]", dataBytes: 3));
        Assert.Contains("'w'", error.Message);
        Assert.Contains("run past the end of the data section (3 bytes", error.Message);
    }

    [Fact]
    public void Open_RejectsByteCountThatDoesNotMatchTheShape()
    {
        var error = Reject(Single("w", "\"F32\"", "[2]", "[0, 4]", 4));
        Assert.Contains("'w'", error.Message);
        Assert.Contains("needs 8", error.Message);
    }

    [Fact]
    public void Open_RejectsOverlappingTensorsNamingBoth()
    {
        var json = "{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}," +
                   " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [2, 6]}}";
        var error = Reject(_scratch.WriteRaw("o.safetensors", json, new byte[6]));
        Assert.Contains("'a'", error.Message);
        Assert.Contains("'b'", error.Message);
        Assert.Contains("overlap", error.Message);
    }

    [Fact]
    public void Open_RejectsGapsBetweenTensors()
    {
        var json = "{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}," +
                   " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [3, 5]}}";
        var error = Reject(_scratch.WriteRaw("g.safetensors", json, new byte[5]));
        Assert.Contains("'b'", error.Message);
        Assert.Contains("gap of 1 bytes", error.Message);
    }

    [Fact]
    public void Open_RejectsGapBeforeTheFirstTensor()
    {
        var error = Reject(Single("w", "\"U8\"", "[2]", "[1, 3]", 3));
        Assert.Contains("gap", error.Message);
    }

    [Fact]
    public void Open_RejectsBytesAfterTheLastTensor()
    {
        var error = Reject(Single("w", "\"U8\"", "[2]", "[0, 2]", dataBytes: 5));
        Assert.Contains("3 bytes after the last tensor", error.Message);
    }

    [Fact]
    public void Open_RejectsDuplicateTensorNames()
    {
        var json = "{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}," +
                   " \"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}";
        var error = Reject(_scratch.WriteRaw("dup.safetensors", json, new byte[2]));
        Assert.Contains("'w' appears more than once", error.Message);
    }

    [Fact]
    public void Open_RejectsDuplicateFieldsInATensorEntry()
    {
        var json = "{\"w\": {\"dtype\": \"U8\", \"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [0, 1]}}";
        Reject(_scratch.WriteRaw("dupfield.safetensors", json, new byte[1]));
    }

    [Fact]
    public void Open_RejectsMetadataWithNonStringValues()
    {
        var error = Reject(_scratch.WriteRaw("meta.safetensors", "{\"__metadata__\": {\"total\": 3}}"));
        Assert.Contains("total", error.Message);
    }

    [Fact]
    public void Open_RejectsTensorEntryThatIsNotAnObject()
    {
        var error = Reject(_scratch.WriteRaw("entry.safetensors", "{\"w\": [1, 2]}"));
        Assert.Contains("'w'", error.Message);
    }

    [Fact]
    public void Open_IgnoresUnknownFieldsInATensorEntry()
    {
        var json = "{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1], \"extra\": {\"a\": [1]}}}";
        using var file = SafeTensorsFile.Open(_scratch.WriteRaw("extra.safetensors", json, [5]));
        Assert.Equal(new byte[] { 5 }, file.GetBytes("w").ToArray());
    }

    [Fact]
    public void Open_ListsTensorsInDataOrderWhateverTheHeaderOrder()
    {
        var json = "{\"second\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [2, 3]}," +
                   " \"first\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}}";
        using var file = SafeTensorsFile.Open(_scratch.WriteRaw("order.safetensors", json, [1, 2, 3]));
        Assert.Equal(["first", "second"], file.Tensors.Select(t => t.Name));
        Assert.Equal(new byte[] { 3 }, file.GetBytes("second").ToArray());
    }

    [Fact]
    public void Open_MissingFile_ThrowsFileNotFound() =>
        Assert.Throws<FileNotFoundException>(() => SafeTensorsFile.Open(_scratch.File("absent.safetensors")));

    private string WriteTwoTensors(string name)
    {
        var path = _scratch.File(name);
        using var writer = new SafeTensorsWriter(path);
        writer.Add("first", SafeTensorDType.F32, [4], new byte[16]);
        writer.Add("second", SafeTensorDType.F32, [4], new byte[16]);
        writer.Complete();
        return path;
    }

    private string Single(string name, string dtype, string shape, string offsets, int dataBytes) =>
        _scratch.WriteRaw(
            "single.safetensors",
            $"{{\"{name}\": {{\"dtype\": {dtype}, \"shape\": {shape}, \"data_offsets\": {offsets}}}}}",
            new byte[dataBytes]);

    private static InvalidDataException Reject(string path)
    {
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, error.Message);
        return error;
    }
}
