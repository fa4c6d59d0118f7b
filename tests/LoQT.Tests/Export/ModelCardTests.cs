using System.Globalization;
using LoQT.Export;
using LoQT.Loqt;
using LoQT.Training;

namespace LoQT.Tests.Export;

/// <summary>The README.md model card an export writes.</summary>
[Collection(ExportCollection.Name)]
public sealed class ModelCardTests(ExportFixture fixture)
{
    private async Task<string> CardAsync(Func<ExportOptions, ExportOptions>? adjust = null, string? checkpoint = null)
    {
        var options = new ExportOptions { Checkpoint = checkpoint ?? fixture.RunDirectory, Output = fixture.NewPath("card") };
        var result = await ModelExporter.ExportAsync(adjust is null ? options : adjust(options));
        return File.ReadAllText(Path.Combine(result.OutputDirectory, "README.md"));
    }

    private static string FrontMatter(string card)
    {
        Assert.StartsWith("---\n", card);
        return card[4..card.IndexOf("\n---\n", 4, StringComparison.Ordinal)];
    }

    [Fact]
    public async Task FrontMatter_NamesTheLibraryAndTags_AndNoBaseModelForALocalBase()
    {
        var front = FrontMatter(await CardAsync());

        Assert.Contains("library_name: transformers", front);
        Assert.Contains("tags:\n- loqt\n- nf4\n- 4-bit\n- bitsandbytes\n- llama", front);
        Assert.DoesNotContain("base_model:", front); // the fixture is a local folder, not a Hub id
        Assert.DoesNotContain("license:", front);
    }

    [Fact]
    public async Task BaseDownloadedFromTheHub_IsNamedWithItsLicense()
    {
        // A base model as the Hub cache lays it out, with its model card: what `loqt adapt --model org/name` trains from.
        var snapshot = Path.Combine(fixture.Root, "hub", "models--meta-llama--Llama-Tiny", "snapshots", "0123456789abcdef0123456789abcdef01234567");
        Directory.CreateDirectory(snapshot);
        foreach (var file in Directory.EnumerateFiles(ExportFixture.TinyLlama).Where(f => !f.EndsWith("golden.safetensors", StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(snapshot, Path.GetFileName(file)));
        }

        File.WriteAllText(Path.Combine(snapshot, "README.md"), "---\nlicense: llama3.2\nlanguage: en\n---\n# Tiny\n");
        var trained = await Trainer.RunAsync(new TrainingRun
        {
            ModelDirectory = snapshot,
            Dataset = fixture.TrainFile,
            OutputDirectory = fixture.NewPath("hub-run"),
            Options = new TrainingOptions { Layers = new LoqtOptions { Rank = 4 }, Steps = 1, BatchSize = 2, SequenceLength = 32 },
        });

        var card = await CardAsync(checkpoint: trained.Checkpoint);

        var front = FrontMatter(card);
        Assert.Contains("base_model: meta-llama/Llama-Tiny\n", front);
        Assert.Contains("license: llama3.2\n", front);
        Assert.Contains("trained from `meta-llama/Llama-Tiny`", card);
    }

    [Fact]
    public async Task Recipe_ComesFromTheCheckpoint()
    {
        var card = await CardAsync();
        var state = TrainerState.Load(fixture.Checkpoint);

        Assert.Contains("| Method | loqt |", card);
        Assert.Contains("| Rank r | 4 |", card);
        Assert.Contains("| α (scale of the low-rank path) | 0.5 |", card);
        Assert.Contains("| Error compensation | 2 iterations |", card);
        Assert.Contains("| Merge schedule | exponential, first gap T = 3, ψ 1.2 |", card);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"| Steps | 6 optimizer steps, {state.TokensSeen:N0} training tokens |"), card);
        Assert.Contains("| Training data | train.jsonl |", card);
        Assert.Contains("| Adapted layers | q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj |", card);
    }

    [Fact]
    public async Task Evaluation_IsTheRunsFinalPerplexity()
    {
        var card = await CardAsync();
        var state = TrainerState.Load(fixture.Checkpoint);

        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"Validation perplexity {Math.Exp(state.LastEvalLoss!.Value):0.###} on `valid.jsonl` at step 6"), card);
    }

    [Fact]
    public async Task Card_ShowsLocalPathsOnlyAsFileNames()
    {
        var card = await CardAsync();

        Assert.DoesNotContain(fixture.Root, card);
        Assert.DoesNotContain(ExportFixture.TinyLlama, card);
    }

    [Theory]
    [InlineData(ExportFormat.Nf4)]
    [InlineData(ExportFormat.BFloat16)]
    public async Task Usage_ShowsTransformersWithBitsAndBytes_AndDotnetLoqt(ExportFormat format)
    {
        var card = await CardAsync(o => o with { Format = format, ModelId = "me/tiny-loqt", DoubleQuant = format == ExportFormat.Nf4 });

        Assert.Contains("# tiny-loqt\n", card);
        Assert.Contains("model_id = \"me/tiny-loqt\"", card);
        Assert.Contains(format == ExportFormat.Nf4
            ? "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=\"nf4\", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)"
            : "quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=\"nf4\"", card);
        Assert.Contains("dotnet loqt generate --model me/tiny-loqt", card);
        Assert.Contains("dotnet loqt eval --model me/tiny-loqt", card);
        Assert.Contains("dotnet loqt adapt --model me/tiny-loqt", card);
    }

    [Theory]
    [InlineData("/home/u/.cache/huggingface/hub/models--org--name/snapshots/abc", "org/name")]
    [InlineData("/cache/models--name.with.dots/snapshots/abc", "name.with.dots")]
    [InlineData("/home/u/models/llama", null)]
    [InlineData("/cache/models--org--name/blobs/abc", null)]
    public void HubId_IsReadFromTheHubCacheLayout(string path, string? expected) =>
        Assert.Equal(expected, BaseModelReference.HubIdOfCachePath(path));
}
