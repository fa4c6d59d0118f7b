using System.CommandLine;
using System.Text.Json.Nodes;
using LoQT.Quantization;
using LoQT.SafeTensors;
using LoQT.Tests.SafeTensors;
using LoQT.Tests.Support;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary><c>loqt quantize</c> on the tiny Llama checkpoints.</summary>
public sealed class QuantizeCommandTests : IDisposable
{
    private static readonly string[] ProjectionWeights =
    [
        "mlp.down_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "self_attn.k_proj.weight", "self_attn.o_proj.weight", "self_attn.q_proj.weight", "self_attn.v_proj.weight",
    ];

    private readonly ScratchFolder scratch = new();

    private static string TinyLlama => TestPaths.Fixture("tiny-llama");

    public void Dispose() => scratch.Dispose();

    [Fact]
    public void Folder_QuantizesTheProjectionsAndCopiesEverythingElseUnchanged()
    {
        var output = scratch.File("out");
        var (exitCode, stdout, stderr) = Run("quantize", "--input", TinyLlama, "--output", output);

        Assert.Equal((0, string.Empty), (exitCode, stderr));
        Assert.Contains("quantized 14 weights", stdout);
        using var original = SafeTensorsCheckpoint.Open(TinyLlama);
        using var quantized = SafeTensorsCheckpoint.Open(output);
        var expectedQuantized = Enumerable.Range(0, 2).SelectMany(l => ProjectionWeights.Select(w => $"model.layers.{l}.{w}")).ToHashSet();
        foreach (var name in original.TensorNames)
        {
            Assert.Equal(expectedQuantized.Contains(name), BnbNf4Format.IsQuantized(quantized, name));
            if (!expectedQuantized.Contains(name))
            {
                Assert.Equal(original.GetInfo(name).DType, quantized.GetInfo(name).DType);
                Assert.Equal(original.GetInfo(name).Shape, quantized.GetInfo(name).Shape);
                Assert.True(original.GetBytes(name).SequenceEqual(quantized.GetBytes(name)), name);
            }
        }

        Assert.Equal(original.TensorNames.Count + (expectedQuantized.Count * 3), quantized.TensorNames.Count);
    }

    [Fact]
    public void Folder_QuantizedWeightsAreTheNf4OfTheOriginals()
    {
        var output = scratch.File("out");
        Assert.Equal(0, Run("quantize", "--input", TinyLlama, "--output", output, "--double-quant").ExitCode);

        using var original = SafeTensorsCheckpoint.Open(TinyLlama);
        using var quantized = SafeTensorsCheckpoint.Open(output);
        const string name = "model.layers.1.mlp.down_proj.weight";
        using var weight = original.ReadTensor(name);
        using var expected = Nf4Tensor.Quantize(weight, 64, doubleQuant: true);
        using var read = BnbNf4Format.Read(quantized, name);

        Assert.True(read.IsDoubleQuantized);
        Assert.Equal(weight.shape, read.Shape);
        using var expectedValues = expected.Dequantize();
        using var actualValues = read.Dequantize();
        Assert.Equal(expectedValues.bytes.ToArray(), actualValues.bytes.ToArray());
    }

    [Fact]
    public void Folder_WritesConfigWithQuantizationConfigAndCopiesTheTokenizer()
    {
        var output = scratch.File("out");
        Assert.Equal(0, Run("quantize", "--input", TinyLlama, "--output", output, "--double-quant").ExitCode);

        var original = JsonNode.Parse(File.ReadAllText(Path.Combine(TinyLlama, "config.json")))!.AsObject();
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!.AsObject();
        foreach (var (key, value) in original)
        {
            Assert.True(JsonNode.DeepEquals(value, written[key]), key);
        }

        var block = QuantizationConfig.FromConfig(written);
        Assert.NotNull(block);
        Assert.True(block.UseDoubleQuant);
        Assert.Equal("float32", block.ComputeDType);
        Assert.Equal(["lm_head", "model.embed_tokens"], block.SkipModules!.Order(StringComparer.Ordinal));
        Assert.Equal(File.ReadAllBytes(Path.Combine(TinyLlama, "tokenizer.model")), File.ReadAllBytes(Path.Combine(output, "tokenizer.model")));
    }

    [Fact]
    public void Skip_LeavesMatchingWeightsUnquantizedAndListsThem()
    {
        var output = scratch.File("out");
        Assert.Equal(0, Run("quantize", "--input", TinyLlama, "--output", output, "--skip", "mlp", "--skip", "model.layers.1.self_attn.*").ExitCode);

        using var quantized = SafeTensorsCheckpoint.Open(output);
        Assert.False(BnbNf4Format.IsQuantized(quantized, "model.layers.0.mlp.up_proj.weight"));
        Assert.False(BnbNf4Format.IsQuantized(quantized, "model.layers.1.self_attn.q_proj.weight"));
        Assert.True(BnbNf4Format.IsQuantized(quantized, "model.layers.0.self_attn.q_proj.weight"));
        var block = QuantizationConfig.ReadFromFile(Path.Combine(output, "config.json"))!;
        Assert.Contains("model.layers.0.mlp.up_proj", block.SkipModules!);
        Assert.Contains("model.layers.1.self_attn.v_proj", block.SkipModules!);
        Assert.DoesNotContain("model.layers.0.self_attn.v_proj", block.SkipModules!);
    }

    [Fact]
    public void NoDefaultSkips_QuantizesTheHeadAndEmbeddingsToo()
    {
        var output = scratch.File("out");
        Assert.Equal(0, Run("quantize", "--input", TinyLlama, "--output", output, "--no-default-skips").ExitCode);

        using var quantized = SafeTensorsCheckpoint.Open(output);
        Assert.True(BnbNf4Format.IsQuantized(quantized, "lm_head.weight"));
        Assert.True(BnbNf4Format.IsQuantized(quantized, "model.embed_tokens.weight"));
        Assert.False(BnbNf4Format.IsQuantized(quantized, "model.norm.weight"));
    }

    [Fact]
    public void BlockSize_IsStoredInEveryQuantState()
    {
        var output = scratch.File("out");
        Assert.Equal(0, Run("quantize", "--input", TinyLlama, "--output", output, "--blocksize", "128").ExitCode);

        using var quantized = SafeTensorsCheckpoint.Open(output);
        var state = BnbNf4Format.ReadQuantState(quantized, "model.layers.0.self_attn.q_proj.weight");
        Assert.Equal(128, state.BlockSize);
        Assert.Equal([32], quantized.GetInfo("model.layers.0.self_attn.q_proj.weight.absmax").Shape);
    }

    [Fact]
    public void ShardedF16Input_IsReadAcrossShards()
    {
        var output = scratch.File("out");
        Assert.Equal(0, Run("quantize", "--input", TestPaths.Fixture("tiny-llama-sharded"), "--output", output).ExitCode);

        using var quantized = SafeTensorsCheckpoint.Open(output);
        var state = BnbNf4Format.ReadQuantState(quantized, "model.layers.1.mlp.gate_proj.weight");
        Assert.Equal("float16", state.DType);
        Assert.Equal("float16", QuantizationConfig.ReadFromFile(Path.Combine(output, "config.json"))!.ComputeDType);
    }

    [Fact]
    public void MaxShardSize_SplitsTheOutputAndWritesAnIndex()
    {
        var output = scratch.File("out");
        Assert.Equal(0, Run("quantize", "--input", TinyLlama, "--output", output, "--max-shard-size", "150kB").ExitCode);

        Assert.True(File.Exists(Path.Combine(output, "model.safetensors.index.json")));
        using var quantized = SafeTensorsCheckpoint.Open(output);
        Assert.True(quantized.IsSharded);
        using var read = BnbNf4Format.Read(quantized, "model.layers.1.self_attn.o_proj.weight");
        Assert.Equal(new long[] { 64, 64 }, read.Shape);
    }

    [Fact]
    public void FileOutput_WritesOneFileAndTheConfigBesideIt()
    {
        var output = scratch.File("nf4/tiny.safetensors");
        Assert.Equal(0, Run("quantize", "--input", Path.Combine(TinyLlama, "model.safetensors"), "--output", output).ExitCode);

        Assert.Equal(["config.json", "tiny.safetensors"], Directory.GetFiles(scratch.File("nf4")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var file = SafeTensorsFile.Open(output);
        Assert.True(BnbNf4Format.IsQuantized(file, "model.layers.0.mlp.gate_proj.weight"));
    }

    [Fact]
    public void MissingInput_IsAnErrorNamingThePath()
    {
        var missing = scratch.File("nowhere");
        var (exitCode, stdout, stderr) = Run("quantize", "--input", missing, "--output", scratch.File("out"));

        Assert.Equal((1, string.Empty), (exitCode, stdout));
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(missing, stderr);
    }

    [Fact]
    public void AlreadyQuantizedInput_IsAnError()
    {
        var once = scratch.File("once");
        Assert.Equal(0, Run("quantize", "--input", TinyLlama, "--output", once).ExitCode);

        var (exitCode, _, stderr) = Run("quantize", "--input", once, "--output", scratch.File("twice"));

        Assert.Equal(1, exitCode);
        Assert.Contains("already quantized", stderr);
        Assert.False(Directory.Exists(scratch.File("twice")) && Directory.EnumerateFiles(scratch.File("twice")).Any());
    }

    [Fact]
    public void OutputOverTheInput_IsRefused()
    {
        var copy = scratch.File("copy");
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(TinyLlama))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        var (exitCode, _, stderr) = Run("quantize", "--input", copy, "--output", copy);

        Assert.Equal(1, exitCode);
        Assert.Contains("overwrite the input", stderr);
        Assert.Equal(File.ReadAllBytes(Path.Combine(TinyLlama, "model.safetensors")), File.ReadAllBytes(Path.Combine(copy, "model.safetensors")));
    }

    [Theory]
    [InlineData("--blocksize", "48")]
    [InlineData("--max-shard-size", "lots")]
    public void InvalidOption_IsAUsageError(string option, string value)
    {
        var (exitCode, _, stderr) = Run("quantize", "--input", TinyLlama, "--output", scratch.File("out"), option, value);

        Assert.Equal(2, exitCode);
        Assert.Contains(option, stderr);
    }

    [Fact]
    public async Task MissingRequiredOption_IsAUsageError()
    {
        // RunAsync is the entry point that maps parse errors to exit code 2.
        var exitCode = await LoqtCli.RunAsync(["quantize", "--output", scratch.File("out")]);

        Assert.Equal(2, exitCode);
    }

    [Fact]
    public void Help_DescribesEveryOption()
    {
        var (exitCode, stdout, _) = Run("quantize", "--help");

        Assert.Equal(0, exitCode);
        foreach (var option in new[] { "--input", "--output", "--double-quant", "--blocksize", "--skip", "--no-default-skips", "--max-shard-size" })
        {
            Assert.Contains(option, stdout);
        }
    }

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = LoqtCli.CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }
}
