using LoQT.Data;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>Choosing the tokenizer file, reading tokenizer_config.json, and the errors for what is not supported.</summary>
public sealed class TokenizerLoaderTests : IDisposable
{
    private readonly ScratchDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private void Copy(string fixtureDirectory, string file)
        => File.Copy(Path.Combine(fixtureDirectory, file), Path.Combine(_dir.Path, file));

    [Fact]
    public void FromDirectory_WithoutTokenizerFiles_NamesTheDirectoryAndWhatIsSupported()
    {
        _dir.Write("tokenizer_config.json", "{}");
        var error = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.FromDirectory(_dir.Path));
        Assert.Equal($"No tokenizer in '{_dir.Path}': expected {TokenizerLoader.SupportedFiles}; found only tokenizer_config.json.", error.Message);
    }

    [Fact]
    public void FromDirectory_MissingDirectory_NamesIt()
    {
        var missing = Path.Combine(_dir.Path, "absent");
        var error = Assert.Throws<DirectoryNotFoundException>(() => TokenizerLoader.FromDirectory(missing));
        Assert.Contains(missing, error.Message);
    }

    [Fact]
    public void FromDirectory_WithBothFiles_PrefersTokenizerJson()
    {
        Copy(TestPaths.Fixture("tokenizers", "sp-bpe-32k"), "tokenizer.json");
        Copy(TestPaths.Fixture("tiny-llama"), "tokenizer.model");

        Assert.Equal(32000, TokenizerLoader.FromDirectory(_dir.Path).VocabularySize);
    }

    [Fact]
    public void FromDirectory_UnsupportedModelType_NamesItAndWhatIsSupported()
    {
        _dir.Write("tokenizer.json", """{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}""");
        var error = Assert.Throws<NotSupportedException>(() => TokenizerLoader.FromDirectory(_dir.Path));
        Assert.Equal($"{Path.Combine(_dir.Path, "tokenizer.json")}: tokenizer model \"Unigram\" is not supported (supported: BPE).", error.Message);
    }

    [Fact]
    public void FromDirectory_UnsupportedPreTokenizer_NamesItAndWhatIsSupported()
    {
        _dir.Write("tokenizer.json", TinyTokenizerJson(preTokenizer: """{"type": "BertPreTokenizer"}"""));
        var error = Assert.Throws<NotSupportedException>(() => TokenizerLoader.FromDirectory(_dir.Path));
        Assert.Contains("pre-tokenizer \"BertPreTokenizer\" is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits)", error.Message);
    }

    [Fact]
    public void FromDirectory_InvalidJson_NamesTheFile()
    {
        _dir.Write("tokenizer.json", "{ not json");
        var error = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromDirectory(_dir.Path));
        Assert.StartsWith($"{Path.Combine(_dir.Path, "tokenizer.json")}: not valid JSON", error.Message);
    }

    [Fact]
    public void SpecialTokens_WrittenAsAddedTokenObjects_AreRead()
    {
        _dir.Write("tokenizer.json", TinyTokenizerJson());
        _dir.Write("tokenizer_config.json", """{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": {"content": "</s>"}, "pad_token": "<unk>"}""");

        var tokenizer = TokenizerLoader.FromDirectory(_dir.Path);

        Assert.Equal((1, 2, 0), (tokenizer.BosTokenId, tokenizer.EosTokenId, tokenizer.PadTokenId));
    }

    [Fact]
    public void AddEosTokenInConfig_OverridesThePostProcessor()
    {
        _dir.Write("tokenizer.json", TinyTokenizerJson());
        _dir.Write("tokenizer_config.json", """{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false, "add_eos_token": true}""");

        var tokenizer = TokenizerLoader.FromDirectory(_dir.Path);

        Assert.Equal([.. tokenizer.Encode("ab"), 2], tokenizer.Encode("ab", addSpecialTokens: true));
        Assert.False(tokenizer.AddsBosToken);
        Assert.True(tokenizer.AddsEosToken);
    }

    [Fact]
    public void SentencePieceModel_AddEosTokenInConfig_AppendsEos()
    {
        Copy(TestPaths.Fixture("tiny-llama"), "tokenizer.model");
        _dir.Write("tokenizer_config.json", """{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "add_eos_token": true}""");

        var tokenizer = TokenizerLoader.FromDirectory(_dir.Path);

        Assert.Equal([1, .. tokenizer.Encode("Hello"), 2], tokenizer.Encode("Hello", addSpecialTokens: true));
    }

    [Fact]
    public void ConfigTokenMissingFromTheVocabulary_IsAnErrorNamingIt()
    {
        _dir.Write("tokenizer.json", TinyTokenizerJson());
        _dir.Write("tokenizer_config.json", """{"eos_token": "<|eot|>"}""");
        var error = Assert.Throws<InvalidDataException>(() => TokenizerLoader.FromDirectory(_dir.Path));
        Assert.Contains("eos_token \"<|eot|>\" is not a token of this tokenizer", error.Message);
    }

    /// <summary>
    /// A SentencePiece-style BPE with byte fallback: vocabulary ▁ a b ▁a ab ▁ab and the bytes of "c",
    /// merges "▁ a", "a b", "▁a b".
    /// </summary>
    internal static string TinyTokenizerJson(string merges = """["▁ a", "a b", "▁a b"]""", string preTokenizer = "null",
        string normalizer = """{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}""",
        string decoder = """{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}""",
        bool byteFallback = true) => $$$$"""
        {
          "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true, "normalized": false},
            {"id": 1, "content": "<s>", "special": true, "normalized": false},
            {"id": 2, "content": "</s>", "special": true, "normalized": false}
          ],
          "normalizer": {{{{normalizer}}}},
          "pre_tokenizer": {{{{preTokenizer}}}},
          "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                             "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
          "decoder": {{{{decoder}}}},
          "model": {
            "type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": {{{{(byteFallback ? "true" : "false")}}}},
            "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x63>": 3, "▁": 4, "a": 5, "b": 6, "▁a": 7, "ab": 8, "▁ab": 9},
            "merges": {{{{merges}}}}
          }
        }
        """;
}
