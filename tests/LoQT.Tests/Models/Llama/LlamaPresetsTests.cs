using System.Text.Json;
using LoQT.Models.Llama;
using LoQT.Training;

namespace LoQT.Tests.Models.Llama;

public class LlamaPresetsTests
{
    [Fact]
    public void Names_AreTheNineSizesTheTrainingIssueAsksFor()
    {
        Assert.Equal(["9m", "20m", "35m", "60m", "130m", "350m", "1b", "7b", "13b"], LlamaPresets.Names);
    }

    // The reference repository's configs/llama_NAME.json: hidden, intermediate, heads, layers, max_sequence_length.
    [Theory]
    [InlineData("9m", 128, 352, 4, 4, 1024)]
    [InlineData("20m", 256, 688, 4, 4, 1024)]
    [InlineData("35m", 384, 1024, 8, 6, 1024)]
    [InlineData("60m", 512, 1376, 8, 8, 1024)]
    [InlineData("130m", 768, 2048, 12, 12, 1024)]
    [InlineData("350m", 1024, 2736, 16, 24, 1024)]
    [InlineData("1b", 2048, 5461, 32, 24, 1024)]
    [InlineData("7b", 4096, 11008, 32, 32, 2048)]
    [InlineData("13b", 5120, 13824, 40, 40, 2048)]
    public void Preset_HasTheReferenceShape(string name, int hidden, int intermediate, int heads, int layers, int positions)
    {
        using var config = JsonDocument.Parse(LlamaPresets.GetConfigJson(name));
        var root = config.RootElement;

        Assert.Equal("llama", root.GetProperty("model_type").GetString());
        Assert.Equal("LlamaForCausalLM", root.GetProperty("architectures")[0].GetString());
        Assert.Equal(hidden, root.GetProperty("hidden_size").GetInt32());
        Assert.Equal(intermediate, root.GetProperty("intermediate_size").GetInt32());
        Assert.Equal(heads, root.GetProperty("num_attention_heads").GetInt32());
        Assert.Equal(heads, root.GetProperty("num_key_value_heads").GetInt32());
        Assert.Equal(layers, root.GetProperty("num_hidden_layers").GetInt32());
        Assert.Equal(positions, root.GetProperty("max_position_embeddings").GetInt32());
        Assert.Equal(32000, root.GetProperty("vocab_size").GetInt32());
        Assert.False(root.GetProperty("tie_word_embeddings").GetBoolean());
        Assert.Equal("silu", root.GetProperty("hidden_act").GetString());
    }

    // Names count every parameter, embeddings and the untied lm_head included (GaLore/LoQT convention), rounded:
    // "1b" is 1.34e9. 1% covers the rounding of the values written here.
    [Theory]
    [InlineData("9m", 9.0e6)]
    [InlineData("20m", 19.5e6)]
    [InlineData("35m", 35.2e6)]
    [InlineData("60m", 58.1e6)]
    [InlineData("130m", 134e6)]
    [InlineData("350m", 368e6)]
    [InlineData("1b", 1.34e9)]
    [InlineData("7b", 6.74e9)]
    [InlineData("13b", 13.0e9)]
    public void ParameterCount_IsWhatTheNameSays(string name, double expected)
    {
        var parameters = ModelShape.FromConfigJson(LlamaPresets.GetConfigJson(name), name).TotalParameters;

        Assert.InRange(parameters / expected, 0.99, 1.01);
    }

    [Theory]
    [InlineData("7b", 6_738_415_616L)] // LLaMA-7B's published parameter count
    [InlineData("13b", 13_015_864_320L)] // LLaMA-13B's
    public void LargePresets_HaveExactlyLlamasParameterCount(string name, long expected)
    {
        Assert.Equal(expected, ModelShape.FromConfigJson(LlamaPresets.GetConfigJson(name), name).TotalParameters);
    }

    [Fact]
    public void GetConfigJson_AcceptsAnyCase()
    {
        Assert.Equal(LlamaPresets.GetConfigJson("7b"), LlamaPresets.GetConfigJson("7B"));
    }

    [Fact]
    public void GetConfigJson_RejectsAnUnknownNameAndListsTheValidOnes()
    {
        var error = Assert.Throws<ArgumentException>(() => LlamaPresets.GetConfigJson("3b"));

        Assert.Contains("'3b'", error.Message);
        Assert.Contains("9m, 20m, 35m, 60m, 130m, 350m, 1b, 7b, 13b", error.Message);
    }

    [Fact]
    public void ResolveConfigJson_ReadsAConfigFile()
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("loqt-presets-").FullName, "my-config.json");
        File.WriteAllText(file, """{"hidden_size": 64}""");

        Assert.Equal("""{"hidden_size": 64}""", LlamaPresets.ResolveConfigJson(file));
    }

    [Fact]
    public void ResolveConfigJson_ReadsTheConfigOfAModelFolder()
    {
        var folder = Directory.CreateTempSubdirectory("loqt-presets-").FullName;
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"hidden_size": 32}""");

        Assert.Equal("""{"hidden_size": 32}""", LlamaPresets.ResolveConfigJson(folder));
    }

    [Fact]
    public void ResolveConfigJson_PrefersThePresetToAFileOfTheSameName()
    {
        Assert.Equal(LlamaPresets.GetConfigJson("20m"), LlamaPresets.ResolveConfigJson("20m"));
    }

    [Fact]
    public void ResolveConfigJson_RejectsAMissingFileAndListsThePresets()
    {
        var error = Assert.Throws<ArgumentException>(() => LlamaPresets.ResolveConfigJson("/nonexistent/config.json"));

        Assert.Contains("/nonexistent/config.json", error.Message);
        Assert.Contains("7b", error.Message);
    }
}
