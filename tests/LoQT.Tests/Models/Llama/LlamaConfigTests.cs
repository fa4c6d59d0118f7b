using System.Text.Json.Nodes;
using LoQT.Models.Llama;
using LoQT.Tests.Support;

namespace LoQT.Tests.Models.Llama;

/// <summary><see cref="LlamaConfig"/>: reading Hugging Face <c>config.json</c> files, defaults, and clear errors.</summary>
public sealed class LlamaConfigTests
{
    [Fact]
    public void Load_ReadsEveryFieldOfTheGqaFixture()
    {
        var config = LlamaConfig.Load(TestPaths.Fixture("tiny-llama3-gqa"));

        Assert.Equal((96, 256, 3, 6, 2, 16, 300), (config.HiddenSize, config.IntermediateSize, config.NumHiddenLayers,
            config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize));
        Assert.Equal((256, 1e-5, 500000.0), (config.MaxPositionEmbeddings, config.RmsNormEps, config.RopeTheta));
        Assert.Equal(new RopeScaling("llama3", 8.0, 1.0, 4.0, 64), config.RopeScaling);
        Assert.True(config.TieWordEmbeddings);
        Assert.False(config.AttentionBias);
        Assert.False(config.MlpBias);
        Assert.Equal(1, config.BosTokenId);
        Assert.Equal([2], config.EosTokenIds);
        Assert.Equal("bfloat16", config.TorchDType);
        Assert.Equal(0.02, config.InitializerRange);
    }

    [Fact]
    public void Parse_MissingFieldsTakeTransformersDefaults()
    {
        var config = LlamaConfig.Parse("""{"model_type": "llama"}""");

        Assert.Equal((4096, 11008, 32, 32, 32, 128, 32000, 2048), (config.HiddenSize, config.IntermediateSize, config.NumHiddenLayers,
            config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.VocabSize, config.MaxPositionEmbeddings));
        Assert.Equal((1e-6, 10000.0), (config.RmsNormEps, config.RopeTheta));
        Assert.Null(config.RopeScaling);
        Assert.False(config.TieWordEmbeddings);
        Assert.Equal(1, config.BosTokenId);
        Assert.Equal([2], config.EosTokenIds);
        Assert.Null(config.PadTokenId);
    }

    [Fact]
    public void Parse_ReadsExplicitHeadDimBiasesAndAListOfEosIds()
    {
        var config = LlamaConfig.Parse("""
            {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32,
             "attention_bias": true, "mlp_bias": true, "eos_token_id": [128001, 128008, 128009], "vocab_size": 128256,
             "pad_token_id": -1}
            """);

        Assert.Equal((32, 1), (config.HeadDim, config.NumKeyValueHeads));
        Assert.True(config.AttentionBias);
        Assert.True(config.MlpBias);
        Assert.Equal([128001, 128008, 128009], config.EosTokenIds);
        Assert.Equal(-1, config.PadTokenId);
    }

    [Fact]
    public void Parse_ReadsLinearRopeScaling_AndTheOlderTypeKey()
    {
        var config = LlamaConfig.Parse("""{"rope_scaling": {"type": "linear", "factor": 4.0}}""");

        Assert.Equal(new RopeScaling("linear", 4.0), config.RopeScaling);
    }

    [Fact]
    public void Parse_DefaultRopeTypeMeansNoScaling() =>
        Assert.Null(LlamaConfig.Parse("""{"rope_scaling": {"rope_type": "default"}}""").RopeScaling);

    [Theory]
    [InlineData("""{"model_type": "mistral"}""", "model_type 'mistral'")]
    [InlineData("""{"architectures": ["GPT2LMHeadModel"]}""", "GPT2LMHeadModel")]
    [InlineData("""{"hidden_act": "gelu"}""", "hidden_act 'gelu'")]
    [InlineData("""{"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}""", "type 'yarn'")]
    public void Parse_UnsupportedModel_NamesWhatIsSupported(string json, string named)
    {
        var error = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(json, "/models/x/config.json"));

        Assert.StartsWith("/models/x/config.json: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
        Assert.Matches("llama|LlamaForCausalLM|silu|linear", error.Message);
    }

    [Theory]
    [InlineData("""{"hidden_size": "big"}""", "hidden_size must be an integer")]
    [InlineData("""{"hidden_size": 0}""", "hidden_size must be positive")]
    [InlineData("""{"hidden_size": 100, "num_attention_heads": 3}""", "not divisible by num_attention_heads")]
    [InlineData("""{"num_attention_heads": 6, "num_key_value_heads": 4, "hidden_size": 96}""", "not a multiple of num_key_value_heads")]
    [InlineData("""{"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}""", "needs low_freq_factor")]
    [InlineData("""{"pad_token_id": 40000}""", "pad_token_id 40000 is outside the vocabulary")]
    [InlineData("""[1, 2]""", "not a JSON object")]
    [InlineData("""{"hidden_size": """, "not valid JSON")]
    public void Parse_InvalidValues_AreErrorsNamingTheFileAndTheField(string json, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(json, "/models/x/config.json"));

        Assert.StartsWith("/models/x/config.json: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFile_NamesThePath()
    {
        var folder = Path.Combine(Path.GetTempPath(), "loqt-no-config-" + Guid.NewGuid().ToString("N"));
        var error = Assert.Throws<FileNotFoundException>(() => LlamaConfig.Load(folder));

        Assert.Contains(folder, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToJson_ThenParse_GivesTheSameConfig_AndKeepsUnknownFields()
    {
        var original = LlamaConfig.Parse("""
            {"hidden_size": 96, "num_attention_heads": 6, "num_key_value_heads": 2, "rope_theta": 500000.0,
             "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 64},
             "tie_word_embeddings": true, "eos_token_id": [2, 3],
             "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true}}
            """);

        var text = original.ToJson();
        var reread = LlamaConfig.Parse(text);

        Assert.Equal(original.RopeScaling, reread.RopeScaling);
        Assert.Equal(original.EosTokenIds, reread.EosTokenIds);
        Assert.Equal((original.HiddenSize, original.NumKeyValueHeads, original.HeadDim, original.RopeTheta, original.TieWordEmbeddings),
            (reread.HiddenSize, reread.NumKeyValueHeads, reread.HeadDim, reread.RopeTheta, reread.TieWordEmbeddings));
        Assert.Equal("bitsandbytes", JsonNode.Parse(text)!["quantization_config"]!["quant_method"]!.GetValue<string>());
        Assert.Equal("LlamaForCausalLM", JsonNode.Parse(text)!["architectures"]![0]!.GetValue<string>());
    }
}
