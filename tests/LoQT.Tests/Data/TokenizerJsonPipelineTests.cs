using LoQT.Data;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>Stages of the tokenizer.json pipeline on a tiny vocabulary (see <see cref="TokenizerLoaderTests.TinyTokenizerJson"/>).</summary>
public sealed class TokenizerJsonPipelineTests : IDisposable
{
    private readonly ScratchDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private ITokenizer Load(string tokenizerJson)
    {
        _dir.Write("tokenizer.json", tokenizerJson);
        return TokenizerLoader.FromDirectory(_dir.Path);
    }

    private static string[] Tokens(ITokenizer tokenizer, string text) => [.. tokenizer.Encode(text).Select(id => tokenizer.IdToToken(id) ?? "?")];

    [Fact]
    public void Merges_ApplyLowestRankFirst()
    {
        // "▁ab": rank 0 "▁ a" makes "▁a", then rank 2 "▁a b" makes "▁ab" (rank 1 "a b" no longer applies).
        Assert.Equal(["▁ab"], Tokens(Load(TokenizerLoaderTests.TinyTokenizerJson()), "ab"));
        // With "a b" ranked first, "ab" forms first and "▁ ab" is no merge.
        Assert.Equal(["▁", "ab"], Tokens(Load(TokenizerLoaderTests.TinyTokenizerJson(merges: """["a b", "▁ a", "▁a b"]""")), "ab"));
    }

    [Fact]
    public void Merges_WrittenAsPairs_ReadLikeMergesWrittenAsStrings()
    {
        var pairs = Load(TokenizerLoaderTests.TinyTokenizerJson(merges: """[["▁", "a"], ["a", "b"], ["▁a", "b"]]"""));
        Assert.Equal(["▁ab", "▁a", "▁", "b"], Tokens(pairs, "ab a b"));
    }

    [Fact]
    public void ByteFallback_WritesUnknownCharactersAsByteTokens_AndDecodesThem()
    {
        var tokenizer = Load(TokenizerLoaderTests.TinyTokenizerJson());
        var ids = tokenizer.Encode("ac");
        Assert.Equal(["▁a", "<0x63>"], ids.Select(id => tokenizer.IdToToken(id) ?? "?"));
        Assert.Equal("ac", tokenizer.Decode(ids));
    }

    [Fact]
    public void WithoutByteFallback_UnknownCharactersFuseIntoOneUnknownToken()
    {
        var tokenizer = Load(TokenizerLoaderTests.TinyTokenizerJson(byteFallback: false));
        Assert.Equal(["▁a", "<unk>", "b"], Tokens(tokenizer, "axyb"));
    }

    [Fact]
    public void MetaspacePreTokenizer_PrependsOnlyAtTheStartOfTheText()
    {
        var tokenizer = Load(TokenizerLoaderTests.TinyTokenizerJson(
            normalizer: "null",
            preTokenizer: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}""",
            decoder: """{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}"""));

        Assert.Equal(["▁ab", "▁a"], Tokens(tokenizer, "ab a"));
        // After an added token the stretch is not at the start of the text: no "▁" is prepended.
        Assert.Equal(["<s>", "ab"], Tokens(tokenizer, "<s>ab"));
        Assert.Equal("ab a", tokenizer.Decode(tokenizer.Encode("ab a")));
    }

    [Fact]
    public void SentencePieceStyleBpe_CuttingWordsBeforeMetaspace_GivesTheIdsOfWholeTextBpe()
    {
        // The shortcut that makes corpus tokenization fast must not change a single id: compare with BPE over the
        // whole normalized line on real sentences.
        var tokenizer = Assert.IsType<HuggingFaceTokenizer>(TokenizerLoader.FromDirectory(TestPaths.Fixture("tokenizers", "sp-bpe-32k")));
        Assert.True(tokenizer.Model.SplitsBeforeMetaspace);
        var lines = File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "valid.jsonl")).Take(300)
            .Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("text").GetString()!);
        foreach (var line in lines)
        {
            var normalized = "▁" + line.Replace(' ', '▁');
            var whole = new List<int>();
            tokenizer.Model.TokenizeWhole(normalized, whole);
            Assert.Equal(whole, tokenizer.Encode(line));
        }
    }
}
