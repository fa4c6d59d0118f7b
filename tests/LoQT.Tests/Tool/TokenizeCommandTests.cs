using System.CommandLine;
using System.Text.Json;
using LoQT.Data;
using LoQT.Tests.Support;
using LoQT.Tool;

namespace LoQT.Tests.Tool;

/// <summary><c>loqt tokenize</c>.</summary>
public sealed class TokenizeCommandTests
{
    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = LoqtCli.CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }

    private static readonly Lazy<ITokenizer> Expected = new(() => TokenizerLoader.FromDirectory(SentencePiece32k));

    private static string SentencePiece32k => TestPaths.Fixture("tokenizers", "sp-bpe-32k");

    [Fact]
    public void Json_PrintsTheIdsWithoutSpecialTokensAsAJsonArray()
    {
        var (exitCode, output, error) = Run("tokenize", "--model", SentencePiece32k, "--text", "Hello world", "--json");

        Assert.Equal((0, string.Empty), (exitCode, error));
        Assert.Equal(Expected.Value.Encode("Hello world"), JsonSerializer.Deserialize<int[]>(output));
    }

    [Fact]
    public void Special_AddsTheTokensTheTokenizerConfigAsksFor()
    {
        var (exitCode, output, _) = Run("tokenize", "--model", SentencePiece32k, "--text", "Hello world", "--special", "--json");

        Assert.Equal(0, exitCode);
        Assert.Equal(Expected.Value.Encode("Hello world", addSpecialTokens: true), JsonSerializer.Deserialize<int[]>(output));
    }

    [Fact]
    public void Special_GivesTheFixturesIdsWithSpecialTokens_WithoutItTheIdsAlone()
    {
        // transformers.js' own ids for "Hello world": BOS (1) is added only with --special.
        var (_, plain, _) = Run("tokenize", "--model", SentencePiece32k, "--text", "Hello world", "--json");
        var (_, special, _) = Run("tokenize", "--model", SentencePiece32k, "--text", "Hello world", "--json", "--special");

        Assert.Equal([22557, 1526], JsonSerializer.Deserialize<int[]>(plain)!);
        Assert.Equal([1, 22557, 1526], JsonSerializer.Deserialize<int[]>(special)!);
    }

    [Fact]
    public void WithoutJson_PrintsIdsSeparatedBySpaces()
    {
        var (exitCode, output, _) = Run("tokenize", "--model", SentencePiece32k, "--text", "The quick brown fox");

        Assert.Equal(0, exitCode);
        var expected = string.Join(' ', Expected.Value.Encode("The quick brown fox"));
        Assert.Equal(expected + Environment.NewLine, output);
    }

    [Fact]
    public void DirectoryWithoutTokenizer_IsAnErrorOnStandardErrorWithExitCode1()
    {
        var empty = TestPaths.Fixture("tiny-llama3-gqa"); // a checkpoint without tokenizer files
        var (exitCode, output, error) = Run("tokenize", "--model", empty, "--text", "hi");

        Assert.Equal((1, string.Empty), (exitCode, output));
        Assert.StartsWith($"error: No tokenizer in '{empty}'", error);
    }
}
