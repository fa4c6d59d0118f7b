using LoQT.Data;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>tiny-llama's tokenizer.model against the sentencepiece library's own output.</summary>
public sealed class SentencePieceModelTokenizerTests
{
    private static readonly Lazy<ITokenizer> Tokenizer = new(() => TokenizerLoader.FromDirectory(TestPaths.Fixture("tiny-llama")));

    public static TheoryData<TokenizerExpectation> Expected => TokenizerExpectation.Read("tiny-llama", "tokenizer-expected.jsonl");

    [Theory]
    [MemberData(nameof(Expected))]
    public void Encode_WithoutSpecialTokens_MatchesSentencePiece(TokenizerExpectation expected)
        => Assert.Equal(expected.Ids, Tokenizer.Value.Encode(expected.Text));

    [Theory]
    [MemberData(nameof(Expected))]
    public void Decode_MatchesSentencePiece(TokenizerExpectation expected)
        => Assert.Equal(expected.Decoded, Tokenizer.Value.Decode(expected.Ids));

    [Fact]
    public void Encode_WithSpecialTokens_PrependsBosAsTokenizerConfigSays()
    {
        // tiny-llama's tokenizer_config.json: bos "<s>", add_bos_token true, add_eos_token false.
        var tokenizer = Tokenizer.Value;
        var plain = tokenizer.Encode("Hello world");
        Assert.Equal(tokenizer.TokenToId("<s>"), tokenizer.BosTokenId);
        Assert.Equal([tokenizer.BosTokenId!.Value, .. plain], tokenizer.Encode("Hello world", addSpecialTokens: true));
    }

    [Fact]
    public void Decode_SkipsBosAndEosUnlessAsked()
    {
        var tokenizer = Tokenizer.Value;
        int[] ids = [tokenizer.BosTokenId!.Value, .. tokenizer.Encode("Hello world"), tokenizer.EosTokenId!.Value];
        Assert.Equal("Hello world", tokenizer.Decode(ids));
        Assert.Equal("<s>Hello world</s>", tokenizer.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void VocabularySize_IsTheModelsVocabulary()
        => Assert.Equal(512, Tokenizer.Value.VocabularySize); // tiny-llama config.json vocab_size
}
