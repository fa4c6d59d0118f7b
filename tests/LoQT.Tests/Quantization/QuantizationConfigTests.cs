using System.Text.Json.Nodes;
using LoQT.Quantization;
using LoQT.Tests.SafeTensors;

namespace LoQT.Tests.Quantization;

/// <summary>The quantization_config block of config.json.</summary>
public class QuantizationConfigTests
{
    [Fact]
    public void ToJson_HasTheFieldsTransformersBitsAndBytesConfigWrites()
    {
        var json = new QuantizationConfig { UseDoubleQuant = true, ComputeDType = "bfloat16", SkipModules = ["lm_head"] }.ToJson();

        Assert.Equal("bitsandbytes", (string?)json["quant_method"]);
        Assert.True((bool?)json["load_in_4bit"]);
        Assert.False((bool?)json["load_in_8bit"]);
        Assert.Equal("nf4", (string?)json["bnb_4bit_quant_type"]);
        Assert.True((bool?)json["bnb_4bit_use_double_quant"]);
        Assert.Equal("bfloat16", (string?)json["bnb_4bit_compute_dtype"]);
        Assert.Equal("uint8", (string?)json["bnb_4bit_quant_storage"]);
        Assert.Equal(["lm_head"], json["llm_int8_skip_modules"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(json.Select(p => p.Key).Order(StringComparer.Ordinal), json.Select(p => p.Key));
        Assert.Contains("\"llm_int8_threshold\":6.0", json.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public void FromConfig_ReadsBackWhatToJsonWrote()
    {
        var written = new QuantizationConfig { UseDoubleQuant = true, ComputeDType = "float16", SkipModules = ["lm_head", "model.embed_tokens"] };
        var config = new JsonObject { ["model_type"] = "llama", [QuantizationConfig.Key] = written.ToJson() };

        var read = QuantizationConfig.FromConfig(config);

        Assert.NotNull(read);
        Assert.Equal(written.UseDoubleQuant, read.UseDoubleQuant);
        Assert.Equal(written.ComputeDType, read.ComputeDType);
        Assert.Equal(written.SkipModules, read.SkipModules);
        Assert.Equal("nf4", read.QuantType);
    }

    [Fact]
    public void FromConfig_IsNullWithoutABitsandbytes4BitBlock()
    {
        Assert.Null(QuantizationConfig.FromConfig(new JsonObject { ["model_type"] = "llama" }));
        Assert.Null(QuantizationConfig.FromConfig(new JsonObject
        {
            [QuantizationConfig.Key] = new JsonObject { ["quant_method"] = "bitsandbytes", ["load_in_8bit"] = true, ["load_in_4bit"] = false },
        }));
        Assert.Null(QuantizationConfig.FromConfig(new JsonObject { [QuantizationConfig.Key] = new JsonObject { ["quant_method"] = "gptq" } }));
    }

    [Fact]
    public void WriteIntoFile_KeepsEveryOtherKeyAndReplacesAnEarlierBlock()
    {
        using var scratch = new ScratchFolder();
        var source = scratch.File("config.json");
        File.WriteAllText(source, "{\"model_type\": \"llama\", \"rms_norm_eps\": 1e-05, \"quantization_config\": {\"quant_method\": \"old\"}, \"vocab_size\": 512}");
        var target = scratch.File("out/config.json");

        new QuantizationConfig { UseDoubleQuant = false }.WriteIntoFile(source, target);

        var written = JsonNode.Parse(File.ReadAllText(target))!.AsObject();
        Assert.Equal(["model_type", "rms_norm_eps", "quantization_config", "vocab_size"], written.Select(p => p.Key));
        Assert.Equal("llama", (string?)written["model_type"]);
        Assert.Equal(1e-05, (double?)written["rms_norm_eps"]);
        Assert.Equal(512, (int?)written["vocab_size"]);
        Assert.Equal("bitsandbytes", (string?)written[QuantizationConfig.Key]!["quant_method"]);
        Assert.Equal(["config.json", "out"], Directory.GetFileSystemEntries(scratch.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(["config.json"], Directory.GetFiles(Path.GetDirectoryName(target)!).Select(Path.GetFileName));
    }

    [Fact]
    public void ReadFromFile_NamesAFileThatIsNotJson()
    {
        using var scratch = new ScratchFolder();
        var path = scratch.File("config.json");
        File.WriteAllText(path, "{ not json");

        var error = Assert.Throws<InvalidDataException>(() => QuantizationConfig.ReadFromFile(path));
        Assert.Contains(path, error.Message);
    }
}
