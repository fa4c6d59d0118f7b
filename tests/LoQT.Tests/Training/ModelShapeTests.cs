using LoQT.Training;

namespace LoQT.Tests.Training;

public class ModelShapeTests
{
    [Fact]
    public void FromConfigJson_NamesTheMissingFieldAndTheSource()
    {
        var error = Assert.Throws<InvalidDataException>(() =>
            ModelShape.FromConfigJson("""{"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100}""", "my/config.json"));

        Assert.Contains("my/config.json", error.Message);
        Assert.Contains("intermediate_size", error.Message);
    }

    [Fact]
    public void FromConfigJson_RejectsText_ThatIsNotJson()
    {
        var error = Assert.Throws<InvalidDataException>(() => ModelShape.FromConfigJson("hidden_size: 64", "broken.json"));

        Assert.Contains("broken.json", error.Message);
    }

    [Fact]
    public void FromConfigJson_RejectsANonPositiveDimension()
    {
        var error = Assert.Throws<InvalidDataException>(() => ModelShape.FromConfigJson(
            """{"hidden_size": 0, "intermediate_size": 8, "num_attention_heads": 1, "num_hidden_layers": 1, "vocab_size": 10}""", "c.json"));

        Assert.Contains("hidden_size", error.Message);
    }

    [Fact]
    public void GroupedQueryAttention_NarrowsKeyAndValueProjections()
    {
        var shape = ModelShape.FromConfigJson(
            """{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 1, "vocab_size": 10}""", "gqa");

        var k = shape.LayerLinears.Single(l => l.Name == "k_proj");
        Assert.Equal((16, 64), (k.Out, k.In)); // 2 kv heads × head_dim 8
    }

    [Fact]
    public void TiedEmbeddings_HaveNoSeparateLmHead()
    {
        const string Untied = """{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": 10}""";
        var untied = ModelShape.FromConfigJson(Untied, "untied");
        var tied = ModelShape.FromConfigJson(Untied.Replace("}", ", \"tie_word_embeddings\": true}"), "tied");

        Assert.Equal(untied.TotalParameters - 10 * 64, tied.TotalParameters);
    }
}
