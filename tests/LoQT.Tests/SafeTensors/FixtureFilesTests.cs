using LoQT.SafeTensors;
using LoQT.Tests.Support;
using TorchSharp;

namespace LoQT.Tests.SafeTensors;

/// <summary>Every <c>.safetensors</c> file in shared/fixtures (written by the Python reference library) reads correctly.</summary>
public class FixtureFilesTests
{
    public static TheoryData<string> FixtureFiles() =>
        new(Directory.EnumerateFiles(TestPaths.Fixtures, "*.safetensors", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(TestPaths.Fixtures, p))
            .Order(StringComparer.Ordinal));

    public static TheoryData<string> FixtureCheckpoints() =>
        new(Directory.EnumerateDirectories(TestPaths.Fixtures)
            .Where(d => File.Exists(Path.Combine(d, "model.safetensors")) || File.Exists(Path.Combine(d, "model.safetensors.index.json")))
            .Select(Path.GetFileName)
            .Order(StringComparer.Ordinal)!);

    [Fact]
    public void Fixtures_IncludeSafetensorsFiles() => Assert.NotEmpty(FixtureFiles());

    [Theory]
    [MemberData(nameof(FixtureFiles))]
    public void FixtureFile_EveryTensorHasItsShapesByteLengthAndReads(string relativePath)
    {
        using var file = SafeTensorsFile.Open(TestPaths.Fixture(relativePath));
        Assert.NotEmpty(file.Tensors);
        foreach (var info in file.Tensors)
        {
            Assert.Equal(info.ElementCount * info.DType.ElementSize(), info.ByteLength);
            Assert.Equal(info.ByteLength, file.GetBytes(info.Name).Length);

            using var tensor = file.ReadTensor(info.Name);
            Assert.Equal(info.DType.ToScalarType(), tensor.dtype);
            Assert.Equal(info.Shape, tensor.shape);
            using var roundTrip = new MemoryStream();
            TensorBytes.WriteTo(tensor, roundTrip);
            Assert.True(file.GetBytes(info.Name).SequenceEqual(roundTrip.ToArray()), $"bytes of {info.Name} differ after reading into torch");
        }
    }

    [Theory]
    [MemberData(nameof(FixtureFiles))]
    public void FixtureFile_RewrittenTensorByTensor_IsByteIdentical(string relativePath)
    {
        // The fixtures come from the Python library: same tensors, order and metadata must give the same bytes.
        using var scratch = new ScratchFolder();
        var original = TestPaths.Fixture(relativePath);
        var copy = scratch.File("copy.safetensors");
        using (var file = SafeTensorsFile.Open(original))
        using (var writer = new SafeTensorsWriter(copy, file.Metadata))
        {
            foreach (var info in file.Tensors)
            {
                writer.Add(info.Name, info.DType, info.Shape, file.GetBytes(info.Name));
            }

            writer.Complete();
        }

        Assert.True(File.ReadAllBytes(original).AsSpan().SequenceEqual(File.ReadAllBytes(copy)), $"{copy} differs from {original}");
    }

    [Theory]
    [MemberData(nameof(FixtureCheckpoints))]
    public void FixtureCheckpoint_ReadsEveryTensorAsFloat(string folder)
    {
        using var checkpoint = SafeTensorsCheckpoint.Open(TestPaths.Fixture(folder));
        Assert.NotEmpty(checkpoint.TensorNames);
        foreach (var name in checkpoint.TensorNames)
        {
            using var tensor = checkpoint.ReadTensor(name, torch.ScalarType.Float32);
            Assert.Equal(checkpoint.GetInfo(name).Shape, tensor.shape);
            Assert.True(tensor.isfinite().all().item<bool>(), $"{folder}/{name} has non-finite values");
        }
    }

    [Fact]
    public void ShardedFixture_OpensThroughItsIndex()
    {
        using var checkpoint = SafeTensorsCheckpoint.Open(TestPaths.Fixture("tiny-llama-sharded"));
        Assert.True(checkpoint.IsSharded);
        Assert.Equal(3, checkpoint.Files.Count);
        Assert.All(checkpoint.TensorNames, n => Assert.Equal(SafeTensorDType.F16, checkpoint.GetInfo(n).DType));
    }
}
