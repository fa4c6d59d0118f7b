using LoQT.Data;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>The 32k SentencePiece-style tokenizer.json (byte fallback, Prepend/Replace normalizer) against transformers.js.</summary>
public sealed class SentencePieceStyleTokenizerJsonTests
{
    private static readonly Lazy<ITokenizer> Tokenizer = new(() => TokenizerLoader.FromDirectory(TestPaths.Fixture("tokenizers", "sp-bpe-32k")));

    public static TheoryData<TokenizerExpectation> Expected => TokenizerExpectation.Read("tokenizers", "sp-bpe-32k", "expected.jsonl");

    [Theory]
    [MemberData(nameof(Expected))]
    public void Encode_WithoutSpecialTokens_MatchesTransformersJs(TokenizerExpectation expected)
        => Assert.Equal(expected.Ids, Tokenizer.Value.Encode(expected.Text));

    [Theory]
    [MemberData(nameof(Expected))]
    public void Encode_WithSpecialTokens_MatchesTransformersJs(TokenizerExpectation expected)
        => Assert.Equal(expected.IdsWithSpecial, Tokenizer.Value.Encode(expected.Text, addSpecialTokens: true));

    // A text that spells added tokens ("<s> … </s>") is not recovered: the stretch between them gets its own "▁",
    // as in the tokenizers library. That line is checked by Decode_KeepsSpacePrependedAfterAddedToken.
    public static TheoryData<TokenizerExpectation> WithoutAddedTokens
        => TokenizerExpectation.Read(e => !e.Text.Contains("<s>", StringComparison.Ordinal), "tokenizers", "sp-bpe-32k", "expected.jsonl");

    [Theory]
    [MemberData(nameof(WithoutAddedTokens))]
    public void Decode_GivesBackTheText(TokenizerExpectation expected)
        => Assert.Equal(expected.Text, Tokenizer.Value.Decode(expected.Ids));

    [Fact]
    public void Decode_KeepsSpacePrependedAfterAddedToken()
    {
        var tokenizer = Tokenizer.Value;
        var ids = tokenizer.Encode("<s> not special </s>");
        Assert.Equal("<s>  not special </s>", tokenizer.Decode(ids, skipSpecialTokens: false));
        Assert.Equal(" not special ", tokenizer.Decode(ids));
    }

    [Fact]
    public void Encode_UnknownCharacter_FallsBackToByteTokens()
    {
        // U+2F0C0 is outside the 32k vocabulary, so its four UTF-8 bytes come out as <0xF0> <0xAF> <0x83> <0x80>.
        var tokenizer = Tokenizer.Value;
        var ids = tokenizer.Encode("\U0002F0C0");
        var tokens = ids.Select(id => tokenizer.IdToToken(id) ?? "?").ToArray();
        Assert.Equal(["▁", "<0xF0>", "<0xAF>", "<0x83>", "<0x80>"], tokens);
        Assert.Equal("\U0002F0C0", tokenizer.Decode(ids));
    }

    [Fact]
    public void Decode_KeepsSpacesBeforePunctuation_WhenTokenizerConfigDoesNotAskForCleanUp()
    {
        var tokenizer = Tokenizer.Value;
        Assert.Equal("Well , yes .", tokenizer.Decode(tokenizer.Encode("Well , yes .")));
    }

    [Fact]
    public void SpecialTokens_ComeFromTokenizerConfig()
    {
        var tokenizer = Tokenizer.Value;
        Assert.Equal((1, 2), (tokenizer.BosTokenId, tokenizer.EosTokenId));
        Assert.True(tokenizer.AddsBosToken);
        Assert.False(tokenizer.AddsEosToken);
        Assert.Null(tokenizer.PadTokenId);
    }
}

/// <summary>The Llama 3 tokenizer.json (128k byte-level BPE, regex pre-tokenizer, 256 added tokens) against transformers.js.</summary>
public sealed class Llama3TokenizerJsonTests
{
    private static readonly Lazy<ITokenizer> Tokenizer = new(() => TokenizerLoader.FromDirectory(Directory));

    // The same file with Microsoft.ML.Tokenizers' Tiktoken switched off: the general byte-level BPE path.
    private static readonly Lazy<ITokenizer> GeneralPath = new(() => HuggingFaceTokenizerReader.Read(
        Path.Combine(Directory, "tokenizer.json"), TokenizerConfig.Load(Directory), allowTiktoken: false));

    private static string Directory => TestPaths.Fixture("tokenizers", "llama3");

    public static TheoryData<TokenizerExpectation> Expected => TokenizerExpectation.Read("tokenizers", "llama3", "expected.jsonl");

    [Theory]
    [MemberData(nameof(Expected))]
    public void Encode_WithoutSpecialTokens_MatchesTransformersJs(TokenizerExpectation expected)
        => Assert.Equal(expected.Ids, Tokenizer.Value.Encode(expected.Text));

    [Theory]
    [MemberData(nameof(Expected))]
    public void Encode_WithSpecialTokens_MatchesTransformersJs(TokenizerExpectation expected)
        => Assert.Equal(expected.IdsWithSpecial, Tokenizer.Value.Encode(expected.Text, addSpecialTokens: true));

    [Theory]
    [MemberData(nameof(Expected))]
    public void Encode_WithoutTiktoken_MatchesTransformersJs(TokenizerExpectation expected)
        => Assert.Equal(expected.Ids, GeneralPath.Value.Encode(expected.Text));

    [Theory]
    [MemberData(nameof(Expected))]
    public void Decode_GivesBackTheText(TokenizerExpectation expected)
        => Assert.Equal(expected.Text, Tokenizer.Value.Decode(expected.Ids));

    [Fact]
    public void Load_UsesTiktokenForRankOrderedByteLevelVocabulary()
    {
        Assert.True(Assert.IsType<HuggingFaceTokenizer>(Tokenizer.Value).UsesTiktoken);
        Assert.False(Assert.IsType<HuggingFaceTokenizer>(GeneralPath.Value).UsesTiktoken);
    }

    [Fact]
    public void Encode_MatchesAddedTokensInTextAsWholeTokens()
    {
        var tokenizer = Tokenizer.Value;
        var ids = tokenizer.Encode("<|begin_of_text|>Hello<|eot_id|>");
        Assert.Equal([128000, 9906, 128009], ids); // 9906 = "Hello" in the fixture; 128009 = <|eot_id|>
        Assert.Equal("Hello", tokenizer.Decode(ids));
        Assert.Equal("<|begin_of_text|>Hello<|eot_id|>", tokenizer.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void Decode_CleansUpTokenizationSpaces_AsItsTokenizerConfigAsks()
    {
        // llama3's tokenizer_config.json sets clean_up_tokenization_spaces, so transformers turns " ," into "," on decode.
        var tokenizer = Tokenizer.Value;
        Assert.Equal("Well, yes.", tokenizer.Decode(tokenizer.Encode("Well , yes .")));
    }

    [Fact]
    public void SpecialTokens_ComeFromTokenizerConfig_AndThePostProcessorAddsNone()
    {
        var tokenizer = Tokenizer.Value;
        Assert.Equal((128000, 128001), (tokenizer.BosTokenId, tokenizer.EosTokenId));
        Assert.False(tokenizer.AddsBosToken);
        Assert.False(tokenizer.AddsEosToken);
        Assert.Equal(128256, tokenizer.VocabularySize);
    }
}
