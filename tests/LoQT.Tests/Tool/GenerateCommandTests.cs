using System.Text;
using LoQT.Data;
using LoQT.Models.Llama;
using LoQT.Tests.Support;

namespace LoQT.Tests.Tool;

/// <summary><c>loqt generate</c> on the tiny-llama fixture (random weights, so the text is gibberish, but deterministic).</summary>
public sealed class GenerateCommandTests
{
    private const string PromptText = "The quick brown fox";

    private static string TinyLlama => TestPaths.Fixture("tiny-llama");

    [Fact]
    public async Task Greedy_PrintsTheDecodedGreedyContinuation_AsItIsGenerated()
    {
        var expected = GreedyContinuation(12);
        var output = new RecordingWriter();
        using var error = new StringWriter();

        var exitCode = await ToolRunner.RunAsync(output, error, "generate", "--model", TinyLlama, "--prompt", PromptText, "--max-new-tokens", "12", "--temperature", "0");

        Assert.True(exitCode == 0, error.ToString());
        Assert.Equal(expected + Environment.NewLine, output.Text);
        // Streaming: text reaches stdout in pieces, flushed as tokens arrive, not in one write at the end.
        Assert.True(output.FlushedWrites >= 3, $"only {output.FlushedWrites} flushed writes");
        Assert.Contains("loaded ", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sampling_WithASeed_IsRepeatable_AndTheSeedMatters()
    {
        string[] args = ["generate", "--model", TinyLlama, "--prompt", PromptText, "--max-new-tokens", "16", "--temperature", "1.0", "--top-p", "0.9"];

        var first = await ToolRunner.RunAsync([.. args, "--seed", "3"]);
        var again = await ToolRunner.RunAsync([.. args, "--seed", "3"]);
        var other = await ToolRunner.RunAsync([.. args, "--seed", "4"]);

        Assert.Equal((0, 0, 0), (first.ExitCode, again.ExitCode, other.ExitCode));
        Assert.Equal(first.Output, again.Output);
        Assert.NotEqual(first.Output, other.Output);
    }

    [Fact]
    public async Task NoCache_PrintsTheSameGreedyText()
    {
        var cached = await ToolRunner.RunAsync("generate", "--model", TinyLlama, "--prompt", PromptText, "--max-new-tokens", "10");
        var uncached = await ToolRunner.RunAsync("generate", "--model", TinyLlama, "--prompt", PromptText, "--max-new-tokens", "10", "--no-cache");

        Assert.Equal(0, cached.ExitCode);
        Assert.Equal(cached.Output, uncached.Output);
    }

    [Theory]
    [InlineData("--temperature", "-0.5")]
    [InlineData("--top-p", "0")]
    [InlineData("--top-p", "1.2")]
    [InlineData("--max-new-tokens", "-1")]
    public async Task OutOfRangeOptions_AreUsageErrors(string option, string value)
    {
        var (exitCode, output, error) = await ToolRunner.RunAsync("generate", "--model", TinyLlama, "--prompt", PromptText, option, value);

        Assert.Equal((2, string.Empty), (exitCode, output));
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelWithoutTokenizer_IsAnError()
    {
        var (exitCode, _, error) = await ToolRunner.RunAsync("generate", "--model", TestPaths.Fixture("tiny-llama3-gqa"), "--prompt", PromptText);

        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: No tokenizer in", error, StringComparison.Ordinal);
    }

    private static string GreedyContinuation(int tokens)
    {
        var tokenizer = TokenizerLoader.FromDirectory(TinyLlama);
        var prompt = tokenizer.Encode(PromptText, addSpecialTokens: true);
        using var model = LlamaForCausalLM.Load(TinyLlama);
        var stops = model.Config.EosTokenIds.Concat(tokenizer.EosTokenId is { } eos ? [eos] : []).ToArray();
        var generated = new LlamaGenerator(model).Generate(prompt, new GenerationOptions { MaxNewTokens = tokens, StopTokenIds = stops }).ToList();
        var full = tokenizer.Decode([.. prompt, .. generated]);
        var promptText = tokenizer.Decode(prompt);
        return full.StartsWith(promptText, StringComparison.Ordinal) ? full[promptText.Length..] : tokenizer.Decode(generated);
    }

    /// <summary>Records what was written and how many writes were followed by a flush before the next write.</summary>
    private sealed class RecordingWriter : TextWriter
    {
        private readonly StringBuilder text = new();
        private bool dirty;

        public override Encoding Encoding => Encoding.UTF8;

        public string Text => text.ToString();

        public int FlushedWrites { get; private set; }

        public override void Write(char value)
        {
            text.Append(value);
            dirty = true;
        }

        public override void Write(string? value)
        {
            text.Append(value);
            dirty = true;
        }

        public override void Flush()
        {
            if (dirty)
            {
                FlushedWrites++;
                dirty = false;
            }
        }
    }
}
