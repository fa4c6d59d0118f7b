using System.Text.Json;
using LoQT.SafeTensors;

namespace LoQT.Tests.SafeTensors;

/// <summary>Writing sharded checkpoints and reading them (and single files) through <see cref="SafeTensorsCheckpoint"/>.</summary>
public sealed class ShardedCheckpointTests : IDisposable
{
    private readonly ScratchFolder _scratch = new();

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public void ShardedWrite_ReadsBackEveryTensorThroughTheIndex()
    {
        var tensors = Tensors((10, 1), (30, 2), (20, 3), (50, 4), (5, 5));
        WriteSharded(maxShardBytes: 40, tensors);

        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        Assert.True(checkpoint.IsSharded);
        Assert.Equal(tensors.Select(t => t.Name), checkpoint.TensorNames);
        foreach (var (name, data) in tensors)
        {
            Assert.Equal(data, checkpoint.GetBytes(name).ToArray());
            Assert.Equal([data.LongLength], checkpoint.GetInfo(name).Shape);
        }
    }

    [Fact]
    public void ShardedWrite_StartsANewShardWhenTheNextTensorWouldExceedTheMax()
    {
        // 10+30 fit in 40; 20 would make 60 -> new shard; 20 alone; 50 is over the max -> its own shard; 5 -> new shard.
        WriteSharded(maxShardBytes: 40, Tensors((10, 1), (30, 2), (20, 3), (50, 4), (5, 5)));

        Assert.Equal(
            ["model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors",
             "model-00004-of-00004.safetensors", "model.safetensors.index.json"],
            _scratch.FileNames());
        var map = WeightMap();
        Assert.Equal("model-00001-of-00004.safetensors", map["t1"]);
        Assert.Equal("model-00001-of-00004.safetensors", map["t2"]);
        Assert.Equal("model-00002-of-00004.safetensors", map["t3"]);
        Assert.Equal("model-00003-of-00004.safetensors", map["t4"]);
        Assert.Equal("model-00004-of-00004.safetensors", map["t5"]);
    }

    [Fact]
    public void KeepTogether_StartsANewShardWhenTheGroupWouldNotFitTheCurrentOne()
    {
        using (var writer = new ShardedSafeTensorsWriter(_scratch.Path, maxShardBytes: 40))
        {
            writer.Add("t1", SafeTensorDType.U8, [30], new byte[30]);

            // 8 + 8 bytes: each piece alone would still fit beside t1, the pair does not.
            writer.KeepTogether(16);
            writer.Add("g1", SafeTensorDType.U8, [8], new byte[8]);
            writer.Add("g2", SafeTensorDType.U8, [8], new byte[8]);
            writer.Complete();
        }

        var map = WeightMap();
        Assert.Equal("model-00001-of-00002.safetensors", map["t1"]);
        Assert.Equal("model-00002-of-00002.safetensors", map["g1"]);
        Assert.Equal("model-00002-of-00002.safetensors", map["g2"]);
    }

    [Fact]
    public void KeepTogether_KeepsAGroupLargerThanAShardInOneShard()
    {
        using (var writer = new ShardedSafeTensorsWriter(_scratch.Path, maxShardBytes: 10))
        {
            writer.KeepTogether(24);
            writer.Add("g1", SafeTensorDType.U8, [8], new byte[8]);
            writer.Add("g2", SafeTensorDType.U8, [8], new byte[8]);
            writer.Add("g3", SafeTensorDType.U8, [8], new byte[8]);
            writer.Add("after", SafeTensorDType.U8, [8], new byte[8]);
            writer.Complete();
        }

        var map = WeightMap();
        Assert.Equal(["model-00001-of-00002.safetensors"], new[] { map["g1"], map["g2"], map["g3"] }.Distinct());
        Assert.Equal("model-00002-of-00002.safetensors", map["after"]);
    }

    [Fact]
    public void ShardedWrite_IndexRecordsTotalSizeAndTheWeightMap()
    {
        WriteSharded(maxShardBytes: 16, Tensors((10, 1), (10, 2), (7, 3)));

        using var index = JsonDocument.Parse(File.ReadAllText(_scratch.File("model.safetensors.index.json")));
        Assert.Equal(27, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        Assert.Equal(3, index.RootElement.GetProperty("weight_map").EnumerateObject().Count());
        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        Assert.Equal("27", checkpoint.Metadata["total_size"]);
    }

    [Fact]
    public void ShardedWrite_PutsTheMetadataInEveryShard()
    {
        using (var writer = new ShardedSafeTensorsWriter(_scratch.Path, 4, metadata: new Dictionary<string, string> { ["format"] = "pt" }))
        {
            writer.Add("a", SafeTensorDType.U8, [4], new byte[4]);
            writer.Add("b", SafeTensorDType.U8, [4], new byte[4]);
            writer.Complete();
        }

        foreach (var shard in Directory.GetFiles(_scratch.Path, "*.safetensors"))
        {
            using var file = SafeTensorsFile.Open(shard);
            Assert.Equal("pt", file.Metadata["format"]);
        }
    }

    [Fact]
    public void ShardedWrite_WithOneShard_WritesModelSafetensorsAndNoIndex()
    {
        WriteSharded(maxShardBytes: 1000, Tensors((10, 1), (20, 2)));

        Assert.Equal(["model.safetensors"], _scratch.FileNames());
        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        Assert.False(checkpoint.IsSharded);
        Assert.Equal(["t1", "t2"], checkpoint.TensorNames);
    }

    [Fact]
    public void ShardedWrite_UsesTheBaseName()
    {
        using (var writer = new ShardedSafeTensorsWriter(_scratch.Path, 4, baseName: "adapter"))
        {
            writer.Add("a", SafeTensorDType.U8, [4], new byte[4]);
            writer.Add("b", SafeTensorDType.U8, [4], new byte[4]);
            writer.Complete();
        }

        Assert.Equal(
            ["adapter-00001-of-00002.safetensors", "adapter-00002-of-00002.safetensors", "adapter.safetensors.index.json"],
            _scratch.FileNames());
    }

    [Fact]
    public void ShardedWrite_RemovesFilesOfAnEarlierSaveWithTheSameBaseName()
    {
        WriteSharded(maxShardBytes: 10, Tensors((10, 1), (10, 2), (10, 3)));
        File.WriteAllText(_scratch.File("config.json"), "{}");

        WriteSharded(maxShardBytes: 100, Tensors((10, 4)));

        Assert.Equal(["config.json", "model.safetensors"], _scratch.FileNames());
    }

    [Fact]
    public void ShardedWrite_DisposeWithoutComplete_LeavesTheFolderAsItWas()
    {
        File.WriteAllText(_scratch.File("config.json"), "{}");
        using (var writer = new ShardedSafeTensorsWriter(_scratch.Path, 4))
        {
            writer.Add("a", SafeTensorDType.U8, [4], new byte[4]);
            writer.Add("b", SafeTensorDType.U8, [4], new byte[4]);
        }

        Assert.Equal(["config.json"], _scratch.FileNames());
    }

    [Fact]
    public void ShardedWrite_RejectsDuplicateNamesAcrossShards()
    {
        using var writer = new ShardedSafeTensorsWriter(_scratch.Path, 4);
        writer.Add("a", SafeTensorDType.U8, [4], new byte[4]);
        writer.Add("b", SafeTensorDType.U8, [4], new byte[4]);
        var error = Assert.Throws<ArgumentException>(() => writer.Add("a", SafeTensorDType.U8, [1], new byte[1]));
        Assert.Contains("'a'", error.Message);
    }

    [Fact]
    public void Open_FolderPrefersModelSafetensorsOverAnIndex()
    {
        WriteSharded(maxShardBytes: 10, Tensors((10, 1), (10, 2)));
        using (var single = new SafeTensorsWriter(_scratch.File("model.safetensors")))
        {
            single.Add("only", SafeTensorDType.U8, [1], [1]);
            single.Complete();
        }

        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        Assert.Equal(["only"], checkpoint.TensorNames);
    }

    [Fact]
    public void Open_AcceptsTheIndexFileItself()
    {
        WriteSharded(maxShardBytes: 10, Tensors((10, 1), (10, 2)));
        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.File("model.safetensors.index.json"));
        Assert.Equal(["t1", "t2"], checkpoint.TensorNames);
    }

    [Fact]
    public void Open_FolderWithoutCheckpoint_ThrowsFileNotFoundNamingTheFolder()
    {
        var error = Assert.Throws<FileNotFoundException>(() => SafeTensorsCheckpoint.Open(_scratch.Path));
        Assert.Contains(_scratch.Path, error.Message);
    }

    [Fact]
    public void MissingShard_FailsOnFirstUseNamingTheShardAndTheTensor()
    {
        WriteSharded(maxShardBytes: 10, Tensors((10, 1), (10, 2)));
        File.Delete(_scratch.File("model-00002-of-00002.safetensors"));

        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        Assert.Equal(10, checkpoint.GetBytes("t1").Length);
        var error = Assert.Throws<FileNotFoundException>(() => checkpoint.GetInfo("t2"));
        Assert.Contains("model-00002-of-00002.safetensors", error.Message);
        Assert.Contains("'t2'", error.Message);
    }

    [Fact]
    public void UnknownTensor_ThrowsKeyNotFoundNamingTheTensor()
    {
        WriteSharded(maxShardBytes: 10, Tensors((10, 1), (10, 2)));
        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        Assert.False(checkpoint.Contains("nope"));
        var error = Assert.Throws<KeyNotFoundException>(() => checkpoint.GetInfo("nope"));
        Assert.Contains("'nope'", error.Message);
    }

    [Fact]
    public void IndexThatPointsAtTheWrongShard_FailsNamingTensorAndShard()
    {
        WriteSharded(maxShardBytes: 10, Tensors((10, 1), (10, 2)));
        WriteIndex("""{"weight_map": {"t1": "model-00002-of-00002.safetensors"}}""");

        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        var error = Assert.Throws<InvalidDataException>(() => checkpoint.GetBytes("t1").Length);
        Assert.Contains("'t1'", error.Message);
        Assert.Contains("model-00002-of-00002.safetensors", error.Message);
    }

    [Fact]
    public void IndexWithDuplicateTensor_IsRejected()
    {
        WriteIndex("""{"weight_map": {"t1": "a.safetensors", "t1": "b.safetensors"}}""");
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsCheckpoint.Open(_scratch.Path));
        Assert.Contains("'t1'", error.Message);
    }

    [Fact]
    public void IndexWithShardOutsideTheFolder_IsRejected()
    {
        WriteIndex("""{"weight_map": {"t1": "../elsewhere.safetensors"}}""");
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsCheckpoint.Open(_scratch.Path));
        Assert.Contains("../elsewhere.safetensors", error.Message);
    }

    [Fact]
    public void IndexWithoutWeightMap_IsRejected()
    {
        WriteIndex("""{"metadata": {"total_size": 3}}""");
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsCheckpoint.Open(_scratch.Path));
        Assert.Contains("weight_map", error.Message);
    }

    [Fact]
    public void Files_ListsEveryShardInOrder()
    {
        WriteSharded(maxShardBytes: 10, Tensors((10, 1), (10, 2)));
        using var checkpoint = SafeTensorsCheckpoint.Open(_scratch.Path);
        Assert.Equal(
            [_scratch.File("model-00001-of-00002.safetensors"), _scratch.File("model-00002-of-00002.safetensors")],
            checkpoint.Files);
        Assert.Equal(_scratch.File("model-00002-of-00002.safetensors"), checkpoint.GetFilePath("t2"));
    }

    private static (string Name, byte[] Data)[] Tensors(params (int Bytes, int Id)[] specs) =>
        specs.Select(s => ($"t{s.Id}", SafeTensorsWriterTests.RandomBytes(s.Bytes, s.Id))).ToArray();

    private void WriteSharded(long maxShardBytes, (string Name, byte[] Data)[] tensors)
    {
        using var writer = new ShardedSafeTensorsWriter(_scratch.Path, maxShardBytes);
        foreach (var (name, data) in tensors)
        {
            writer.Add(name, SafeTensorDType.U8, [data.Length], data);
        }

        writer.Complete();
    }

    private Dictionary<string, string> WeightMap()
    {
        using var index = JsonDocument.Parse(File.ReadAllText(_scratch.File("model.safetensors.index.json")));
        return index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }

    private void WriteIndex(string json) => File.WriteAllText(_scratch.File("model.safetensors.index.json"), json);
}
