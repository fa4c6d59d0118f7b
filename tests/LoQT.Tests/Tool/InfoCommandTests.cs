using System.Buffers.Binary;
using System.CommandLine;
using System.Text.Json;
using LoQT.Tests.SafeTensors;
using LoQT.Tests.Support;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary><c>loqt info</c> on files, folders, sharded and quantized checkpoints.</summary>
public sealed class InfoCommandTests : IDisposable
{
    private readonly ScratchFolder scratch = new();

    public void Dispose() => scratch.Dispose();

    [Fact]
    public void File_ReportsEveryTensorWithItsDtypeShapeAndTheTotals()
    {
        var path = TestPaths.Fixture("tiny-llama", "model.safetensors");
        var (exitCode, stdout, stderr) = Run("info", path, "--json");

        Assert.Equal((0, string.Empty), (exitCode, stderr));
        using var report = JsonDocument.Parse(stdout);
        var root = report.RootElement;
        var header = RawHeader(path);
        Assert.Equal(header.Count, root.GetProperty("tensor_count").GetInt32());
        Assert.Equal(header.Values.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)), root.GetProperty("parameters").GetInt64());
        Assert.Equal(header.Values.Sum(t => t.Bytes), root.GetProperty("tensor_bytes").GetInt64());
        Assert.Equal(new FileInfo(path).Length, root.GetProperty("file_bytes").GetInt64());
        foreach (var tensor in root.GetProperty("tensors").EnumerateArray())
        {
            var expected = header[tensor.GetProperty("name").GetString()!];
            Assert.Equal(expected.DType, tensor.GetProperty("dtype").GetString());
            Assert.Equal(expected.Shape, tensor.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        }

        Assert.Equal(JsonValueKind.Null, root.GetProperty("quantization").ValueKind);
        Assert.Equal("llama", root.GetProperty("config").GetProperty("model_type").GetString());
    }

    [Fact]
    public void ShardedFolder_ListsItsShardsAndAllTensors()
    {
        var (exitCode, stdout, _) = Run("info", TestPaths.Fixture("tiny-llama-sharded"), "--json");

        Assert.Equal(0, exitCode);
        using var report = JsonDocument.Parse(stdout);
        var root = report.RootElement;
        Assert.True(root.GetProperty("sharded").GetBoolean());
        Assert.Equal(3, root.GetProperty("files").GetArrayLength());
        var expectedTensors = Directory.GetFiles(TestPaths.Fixture("tiny-llama-sharded"), "model-*.safetensors").Sum(f => RawHeader(f).Count);
        Assert.Equal(expectedTensors, root.GetProperty("tensor_count").GetInt32());
        Assert.All(root.GetProperty("tensors").EnumerateArray(), t => Assert.Equal("F16", t.GetProperty("dtype").GetString()));
    }

    [Fact]
    public void QuantizedFolder_FoldsTheQuantStateIntoEachNf4Weight()
    {
        var quantized = scratch.File("q");
        Assert.Equal(0, Run("quantize", "--input", TestPaths.Fixture("tiny-llama"), "--output", quantized, "--double-quant").ExitCode);
        var (_, original, _) = Run("info", TestPaths.Fixture("tiny-llama"), "--json");

        var (exitCode, stdout, _) = Run("info", quantized, "--json");

        Assert.Equal(0, exitCode);
        using var before = JsonDocument.Parse(original);
        using var report = JsonDocument.Parse(stdout);
        var root = report.RootElement;
        Assert.Equal(before.RootElement.GetProperty("tensor_count").GetInt32(), root.GetProperty("tensor_count").GetInt32());
        Assert.Equal(before.RootElement.GetProperty("parameters").GetInt64(), root.GetProperty("parameters").GetInt64());
        var quantization = root.GetProperty("quantization");
        Assert.Equal("nf4", quantization.GetProperty("type").GetString());
        Assert.Equal(14, quantization.GetProperty("weights").GetInt32());
        Assert.True(quantization.GetProperty("double_quant").GetBoolean());
        Assert.Equal([64], quantization.GetProperty("block_sizes").EnumerateArray().Select(e => e.GetInt32()));
        var q = root.GetProperty("tensors").EnumerateArray().Single(t => t.GetProperty("name").GetString() == "model.layers.0.self_attn.q_proj.weight");
        Assert.Equal("NF4", q.GetProperty("dtype").GetString());
        Assert.Equal([64L, 64L], q.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("bitsandbytes", root.GetProperty("config").GetProperty("quantization_config").GetProperty("quant_method").GetString());
    }

    [Fact]
    public void Text_SummarizesTensorsQuantizationAndConfig()
    {
        var (exitCode, stdout, _) = Run("info", TestPaths.Fixture("tiny-llama3-gqa"));

        Assert.Equal(0, exitCode);
        Assert.Contains("model.layers.0.self_attn.k_proj.weight", stdout);
        Assert.Contains("BF16", stdout);
        Assert.Contains("quantization: none", stdout);
        Assert.Contains("num_key_value_heads: 2", stdout);
        Assert.Contains("parameters:", stdout);
    }

    [Fact]
    public void Summary_LeavesOutThePerTensorList()
    {
        var (exitCode, stdout, _) = Run("info", TestPaths.Fixture("tiny-llama"), "--summary");

        Assert.Equal(0, exitCode);
        Assert.DoesNotContain("model.layers.0.self_attn.k_proj.weight", stdout);
        Assert.Contains("tensors:", stdout);
    }

    [Fact]
    public void MissingPath_IsAnErrorNamingIt()
    {
        var missing = scratch.File("absent");
        var (exitCode, stdout, stderr) = Run("info", missing);

        Assert.Equal((1, string.Empty), (exitCode, stdout));
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(missing, stderr);
    }

    [Fact]
    public void FolderWithoutWeights_IsAnError()
    {
        var (exitCode, _, stderr) = Run("info", scratch.Path);

        Assert.Equal(1, exitCode);
        Assert.Contains("model.safetensors", stderr);
    }

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = LoqtCli.CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }

    /// <summary>The header read with nothing but System.Text.Json: name -> (dtype, shape, bytes).</summary>
    private static Dictionary<string, (string DType, long[] Shape, long Bytes)> RawHeader(string path)
    {
        var prefix = new byte[8];
        using var stream = File.OpenRead(path);
        stream.ReadExactly(prefix);
        var json = new byte[(int)BinaryPrimitives.ReadUInt64LittleEndian(prefix)];
        stream.ReadExactly(json);
        using var header = JsonDocument.Parse(json);
        return header.RootElement.EnumerateObject()
            .Where(p => p.Name != "__metadata__")
            .ToDictionary(
                p => p.Name,
                p =>
                {
                    var offsets = p.Value.GetProperty("data_offsets");
                    return (p.Value.GetProperty("dtype").GetString()!,
                        p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(),
                        offsets[1].GetInt64() - offsets[0].GetInt64());
                });
    }
}
