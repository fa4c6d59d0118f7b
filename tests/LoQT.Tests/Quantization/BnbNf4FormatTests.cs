using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using LoQT.Quantization;
using LoQT.SafeTensors;
using LoQT.Tests.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Quantization;

/// <summary>The bitsandbytes safetensors layout of NF4 weights: keys, quant-state JSON, and reading it back.</summary>
public class BnbNf4FormatTests
{
    private const string Weight = "model.layers.0.mlp.up_proj.weight";

    [Theory]
    [InlineData(false, ScalarType.BFloat16)]
    [InlineData(true, ScalarType.BFloat16)]
    [InlineData(false, ScalarType.Float32)]
    [InlineData(true, ScalarType.Float16)]
    public void WriteThenRead_GivesBackTheSameStorageAndValues(bool doubleQuant, ScalarType dtype)
    {
        using var scratch = new ScratchFolder();
        using var x = RandomTensor([48, 80], dtype);
        using var original = Nf4Tensor.Quantize(x, 64, doubleQuant);
        var path = WriteFile(scratch, original);

        using var file = SafeTensorsFile.Open(path);
        Assert.True(BnbNf4Format.IsQuantized(file, Weight));
        using var read = BnbNf4Format.Read(file, Weight);

        Assert.Equal(original.Shape, read.Shape);
        Assert.Equal(original.BlockSize, read.BlockSize);
        Assert.Equal(dtype, read.OriginalDType);
        Assert.Equal(doubleQuant, read.IsDoubleQuantized);
        Assert.Equal(original.Packed.bytes.ToArray(), read.Packed.bytes.ToArray());
        Assert.Equal(original.Absmax.bytes.ToArray(), read.Absmax.bytes.ToArray());
        Assert.Equal(original.NestedOffset, read.NestedOffset);
        using var expected = original.Dequantize();
        using var actual = read.Dequantize();
        Assert.Equal(expected.bytes.ToArray(), actual.bytes.ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Write_StoresExactlyTheKeysDtypesAndShapesBitsandbytesUses(bool doubleQuant)
    {
        using var scratch = new ScratchFolder();
        using var x = RandomTensor([48, 80], ScalarType.BFloat16);
        using var q = Nf4Tensor.Quantize(x, 64, doubleQuant);
        var header = RawHeader(WriteFile(scratch, q));

        var expected = new Dictionary<string, (string DType, long[] Shape)>
        {
            [Weight] = ("U8", [1920, 1]),
            [Weight + ".absmax"] = (doubleQuant ? "U8" : "F32", [60]),
            [Weight + ".quant_map"] = ("F32", [16]),
        };
        if (doubleQuant)
        {
            expected[Weight + ".nested_absmax"] = ("F32", [1]);
            expected[Weight + ".nested_quant_map"] = ("F32", [256]);
        }

        var stateKey = Weight + ".quant_state.bitsandbytes__nf4";
        Assert.Equal(expected.Keys.Append(stateKey).Order(StringComparer.Ordinal), header.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, (dtype, shape)) in expected)
        {
            Assert.Equal(dtype, header[name].DType);
            Assert.Equal(shape, header[name].Shape);
        }

        Assert.Equal("U8", header[stateKey].DType);
    }

    [Fact]
    public void QuantState_IsTheJsonPythonsJsonDumpsWritesForTheDict()
    {
        using var scratch = new ScratchFolder();
        using var x = RandomTensor([48, 80], ScalarType.BFloat16);
        using var q = Nf4Tensor.Quantize(x, 64, doubleQuant: true);
        var path = WriteFile(scratch, q);

        var json = Encoding.UTF8.GetString(RawData(path, Weight + ".quant_state.bitsandbytes__nf4"));

        var prefix = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [48, 80], " +
            "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ";
        Assert.StartsWith(prefix, json);
        Assert.EndsWith("}", json);
        var offsetText = json[prefix.Length..^1];
        Assert.Equal((double)q.NestedOffset, double.Parse(offsetText, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains('.', offsetText); // a Python float, never an integer literal
    }

    [Fact]
    public void QuantMaps_AreTheNf4CodeAndTheSignedDynamicMapOfTheFixture()
    {
        using var scratch = new ScratchFolder();
        using var x = RandomTensor([48, 80], ScalarType.Float32);
        using var q = Nf4Tensor.Quantize(x, 64, doubleQuant: true);
        var path = WriteFile(scratch, q);

        Assert.Equal(Nf4Fixture.Instance.Bytes("nf4_code").ToArray(), RawData(path, Weight + ".quant_map"));
        Assert.Equal(Nf4Fixture.Instance.Bytes("dynamic_map").ToArray(), RawData(path, Weight + ".nested_quant_map"));
    }

    [Theory]
    [MemberData(nameof(Nf4Fixture.Cases), MemberType = typeof(Nf4Fixture))]
    public void Read_OfAFileLaidOutByHandFromTheFixture_DequantizesToTheExpectedValues(int id)
    {
        // Written entry by entry, as a Python bitsandbytes save would lay it out, not through BnbNf4Format.Write.
        var fixture = Nf4Fixture.Instance;
        using var scratch = new ScratchFolder();
        var shape = fixture.Shape($"case{id}.dequant");
        var offset = fixture.Floats($"case{id}.dq.nested_offset")[0];
        var state = $"{{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [{string.Join(", ", shape)}], " +
            $"\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": {((double)offset).ToString("R", System.Globalization.CultureInfo.InvariantCulture)}}}";
        var path = scratch.File("case.safetensors");
        using (var writer = new SafeTensorsWriter(path))
        {
            writer.Add("w.weight", SafeTensorDType.U8, fixture.Shape($"case{id}.packed"), fixture.Bytes($"case{id}.packed"));
            writer.Add("w.weight.absmax", SafeTensorDType.U8, fixture.Shape($"case{id}.dq.absmax"), fixture.Bytes($"case{id}.dq.absmax"));
            writer.Add("w.weight.quant_map", SafeTensorDType.F32, [16], fixture.Bytes("nf4_code"));
            writer.Add("w.weight.nested_absmax", SafeTensorDType.F32, fixture.Shape($"case{id}.dq.nested_absmax"), fixture.Bytes($"case{id}.dq.nested_absmax"));
            writer.Add("w.weight.nested_quant_map", SafeTensorDType.F32, [256], fixture.Bytes("dynamic_map"));
            writer.Add("w.weight.quant_state.bitsandbytes__nf4", SafeTensorDType.U8, [Encoding.UTF8.GetByteCount(state)], Encoding.UTF8.GetBytes(state));
            writer.Complete();
        }

        using var checkpoint = SafeTensorsCheckpoint.Open(path);
        using var q = BnbNf4Format.Read(checkpoint, "w.weight");
        using var values = q.Dequantize();

        Assert.Equal(shape, values.shape);
        Assert.Equal(fixture.Bytes($"case{id}.dq.dequant").ToArray(), values.bytes.ToArray());
    }

    [Fact]
    public void ShardedWrite_KeepsEachWeightWithItsQuantStateInOneShard()
    {
        // transformers reads a weight's quant state from the shard that holds the weight, so the parts must not be split.
        using var scratch = new ScratchFolder();
        using var x = RandomTensor([64, 128], ScalarType.Float32);
        using var q = Nf4Tensor.Quantize(x, 64, doubleQuant: true);
        using (var writer = new ShardedSafeTensorsWriter(scratch.Path, maxShardBytes: 1024))
        {
            BnbNf4Format.Write(writer, Weight, q);
            BnbNf4Format.Write(writer, "other.weight", q);
            Assert.Equal(2, writer.ShardCount);
            writer.Complete();
        }

        using var checkpoint = SafeTensorsCheckpoint.Open(scratch.Path);
        foreach (var weight in new[] { Weight, "other.weight" })
        {
            var parts = checkpoint.TensorNames.Where(n => n == weight || BnbNf4Format.WeightNameOf(n) == weight).ToArray();
            Assert.Equal(6, parts.Length);
            Assert.Single(parts.Select(checkpoint.GetFilePath).Distinct());
            using var read = BnbNf4Format.Read(checkpoint, weight);
            using var expected = q.Dequantize();
            using var actual = read.Dequantize();
            Assert.Equal(expected.bytes.ToArray(), actual.bytes.ToArray());
        }

        Assert.NotEqual(checkpoint.GetFilePath(Weight), checkpoint.GetFilePath("other.weight"));
    }

    [Theory]
    [InlineData("model.layers.0.mlp.up_proj.weight.absmax", true)]
    [InlineData("model.layers.0.mlp.up_proj.weight.quant_map", true)]
    [InlineData("model.layers.0.mlp.up_proj.weight.nested_absmax", true)]
    [InlineData("model.layers.0.mlp.up_proj.weight.nested_quant_map", true)]
    [InlineData("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4", true)]
    [InlineData("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__fp4", true)]
    [InlineData("model.layers.0.mlp.up_proj.weight", false)]
    [InlineData("model.norm.weight", false)]
    [InlineData("absmax", false)]
    public void IsQuantStateKey_RecognizesTheCompanionsOfAWeight(string name, bool expected)
    {
        Assert.Equal(expected, BnbNf4Format.IsQuantStateKey(name));
    }

    [Fact]
    public void WeightNameOf_GivesTheWeightACompanionBelongsTo()
    {
        Assert.Equal(Weight, BnbNf4Format.WeightNameOf(Weight + ".nested_absmax"));
        Assert.Equal(Weight, BnbNf4Format.WeightNameOf(Weight + ".quant_state.bitsandbytes__nf4"));
        Assert.Null(BnbNf4Format.WeightNameOf(Weight));
    }

    [Fact]
    public void Read_NamesAMissingPartAndTheFile()
    {
        using var scratch = new ScratchFolder();
        using var x = RandomTensor([48, 80], ScalarType.Float32);
        using var q = Nf4Tensor.Quantize(x);
        var path = scratch.File("partial.safetensors");
        using (var writer = new SafeTensorsWriter(path))
        {
            foreach (var entry in BnbNf4Format.Serialize(Weight, q).Where(e => !e.Name.EndsWith(".absmax", StringComparison.Ordinal)))
            {
                writer.Add(entry.Name, entry.DType, entry.Shape, entry.Data);
            }

            writer.Complete();
        }

        using var file = SafeTensorsFile.Open(path);
        var error = Assert.Throws<KeyNotFoundException>(() => BnbNf4Format.Read(file, Weight));
        Assert.Contains(Weight + ".absmax", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void Read_OfAPlainWeight_SaysItIsNotNf4()
    {
        using var scratch = new ScratchFolder();
        var path = scratch.File("plain.safetensors");
        using (var writer = new SafeTensorsWriter(path))
        using (var x = RandomTensor([4, 4], ScalarType.Float32))
        {
            writer.Add(Weight, x);
            writer.Complete();
        }

        using var file = SafeTensorsFile.Open(path);
        Assert.False(BnbNf4Format.IsQuantized(file, Weight));
        var error = Assert.Throws<KeyNotFoundException>(() => BnbNf4Format.Read(file, Weight));
        Assert.Contains("not a bitsandbytes NF4 weight", error.Message);
    }

    [Fact]
    public void Read_RejectsAQuantStateOfAnotherType()
    {
        using var scratch = new ScratchFolder();
        using var x = RandomTensor([48, 80], ScalarType.Float32);
        using var q = Nf4Tensor.Quantize(x);
        var path = scratch.File("fp4.safetensors");
        using (var writer = new SafeTensorsWriter(path))
        {
            foreach (var entry in BnbNf4Format.Serialize(Weight, q))
            {
                var data = entry.Name.EndsWith("bitsandbytes__nf4", StringComparison.Ordinal)
                    ? Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(entry.Data).Replace("\"nf4\"", "\"fp4\"", StringComparison.Ordinal))
                    : entry.Data;
                writer.Add(entry.Name, entry.DType, entry.Shape, data);
            }

            writer.Complete();
        }

        using var file = SafeTensorsFile.Open(path);
        var error = Assert.Throws<InvalidDataException>(() => BnbNf4Format.Read(file, Weight));
        Assert.Contains("fp4", error.Message);
    }

    private static string WriteFile(ScratchFolder scratch, Nf4Tensor q)
    {
        var path = scratch.File("model.safetensors");
        using var writer = new SafeTensorsWriter(path);
        BnbNf4Format.Write(writer, Weight, q);
        writer.Complete();
        return path;
    }

    private static Tensor RandomTensor(long[] shape, ScalarType dtype)
    {
        using var generator = new Generator(99);
        using var x = randn(shape, generator: generator);
        return x.to(dtype);
    }

    /// <summary>The header read with nothing but System.Text.Json: name -> (dtype, shape).</summary>
    private static Dictionary<string, (string DType, long[] Shape)> RawHeader(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, length));
        return header.RootElement.EnumerateObject()
            .Where(p => p.Name != "__metadata__")
            .ToDictionary(
                p => p.Name,
                p => (p.Value.GetProperty("dtype").GetString()!, p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray()));
    }

    private static byte[] RawData(string path, string name)
    {
        var bytes = File.ReadAllBytes(path);
        var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, length));
        var offsets = header.RootElement.GetProperty(name).GetProperty("data_offsets");
        var begin = 8 + length + offsets[0].GetInt32();
        return bytes[begin..(8 + length + offsets[1].GetInt32())];
    }
}
