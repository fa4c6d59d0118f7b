using System.CommandLine;
using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.Tests.Support;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary>
/// <c>loqt bench train</c> with a budget of seconds: a one-layer model of the 9m preset's vocabulary, a slice of the
/// corpus, two steps per method (the measurement itself is for people, not tests).
/// </summary>
public sealed class BenchTrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loqt-bench-train-").FullName;

    public BenchTrainCommandTests()
    {
        Directory.CreateDirectory(DataDirectory);
        var corpus = Path.Combine(TestPaths.Shared, "data", "nlp-corpus");
        File.WriteAllLines(Path.Combine(DataDirectory, "train.jsonl"), File.ReadLines(Path.Combine(corpus, "train.jsonl")).Take(200));
        File.WriteAllLines(Path.Combine(DataDirectory, "valid.jsonl"), File.ReadLines(Path.Combine(corpus, "valid.jsonl")).Take(40));
        var config = JsonNode.Parse(LoQT.Models.Llama.LlamaPresets.GetConfigJson("9m"))!.AsObject();
        config["hidden_size"] = 32;
        config["intermediate_size"] = 64;
        config["num_hidden_layers"] = 1;
        config["num_attention_heads"] = 2;
        config["num_key_value_heads"] = 2;
        File.WriteAllText(ConfigFile, config.ToJsonString());
    }

    private string DataDirectory => Path.Combine(_dir, "data");

    private string ConfigFile => Path.Combine(_dir, "tiny.json");

    private string Output => Path.Combine(_dir, "out");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TinyRun_WritesResultsPerMethodWithRatiosToFullAndALossChart()
    {
        var (exitCode, stdout, stderr) = Run(
            "bench", "train", "--config", ConfigFile, "--data", DataDirectory, "--tokenizer", TestPaths.Fixture("tokenizers", "sp-bpe-32k"),
            "--methods", "loqt,full", "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--rank", "4", "--eval-lines", "10",
            "--output", Output, "--json");

        Assert.True(exitCode == 0, stderr);
        using var results = JsonDocument.Parse(File.ReadAllText(Path.Combine(Output, "results.json")));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(results.RootElement.GetRawText()), JsonNode.Parse(stdout)), "stdout is not results.json");
        var methods = results.RootElement.GetProperty("methods").EnumerateArray().ToArray();
        Assert.Equal(["full", "loqt"], methods.Select(m => m.GetProperty("method").GetString())); // full first: the ratios are to it
        foreach (var method in methods)
        {
            Assert.True(double.IsFinite(method.GetProperty("eval_perplexity").GetDouble()));
            Assert.True(method.GetProperty("tokens_per_second").GetDouble() > 0);
            Assert.True(method.GetProperty("peak_rss_bytes").GetInt64() > 10 << 20);
            Assert.Equal([1L, 2], method.GetProperty("loss_curve").GetProperty("step").EnumerateArray().Select(s => s.GetInt64()));
            Assert.Equal(2, method.GetProperty("loss_curve").GetProperty("loss").GetArrayLength());
            var ratio = method.GetProperty("ratio_to_full");
            var full = methods[0];
            Assert.Equal(method.GetProperty("eval_perplexity").GetDouble() / full.GetProperty("eval_perplexity").GetDouble(), ratio.GetProperty("eval_perplexity").GetDouble(), 12);
            Assert.Equal(method.GetProperty("tokens_per_second").GetDouble() / full.GetProperty("tokens_per_second").GetDouble(), ratio.GetProperty("tokens_per_second").GetDouble(), 12);
        }

        Assert.Equal(1.0, methods[0].GetProperty("ratio_to_full").GetProperty("peak_rss_bytes").GetDouble());
        var goals = results.RootElement.GetProperty("goals");
        Assert.Equal(methods[1].GetProperty("ratio_to_full").GetProperty("eval_perplexity").GetDouble(), goals.GetProperty("loqt_perplexity_ratio").GetDouble());
        Assert.Equal(2, results.RootElement.GetProperty("settings").GetProperty("steps").GetInt32());

        // Each method ran in its own process and left its run (and metrics) behind.
        Assert.True(File.Exists(Path.Combine(Output, "loqt", "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(Output, "full", "metrics.jsonl")));

        var png = File.ReadAllBytes(Path.Combine(Output, "loss-curves.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.Equal(900, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16, 4))); // IHDR width
        Assert.Equal(560, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20, 4))); // IHDR height
    }

    [Fact]
    public void RankThatDoesNotFitTheModel_FailsBeforeAnyRun()
    {
        var (exitCode, _, stderr) = Run(
            "bench", "train", "--config", ConfigFile, "--data", DataDirectory, "--tokenizer", TestPaths.Fixture("tokenizers", "sp-bpe-32k"),
            "--rank", "32", "--output", Output);

        Assert.Equal(1, exitCode);
        Assert.Contains("--rank 32", stderr);
        Assert.False(Directory.Exists(Output));
    }

    [Fact]
    public void UnknownMethod_FailsNamingTheOption()
    {
        var (exitCode, _, stderr) = Run("bench", "train", "--config", ConfigFile, "--data", DataDirectory, "--methods", "full,qlora", "--output", Output);

        Assert.Equal(1, exitCode);
        Assert.Contains("qlora", stderr);
        Assert.Contains("--methods", stderr);
        Assert.False(Directory.Exists(Output));
    }

    [Fact]
    public void MissingData_FailsNamingTheFile()
    {
        var (exitCode, _, stderr) = Run("bench", "train", "--config", ConfigFile, "--data", Path.Combine(_dir, "nowhere"), "--tokenizer", TestPaths.Fixture("tokenizers", "sp-bpe-32k"), "--output", Output);

        Assert.Equal(1, exitCode);
        Assert.Contains("train.jsonl", stderr);
    }

    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = LoqtCli.CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }
}
