using LoQT.Export;
using LoQT.SafeTensors;
using LoQT.Training;

namespace LoQT.Tests.Export;

/// <summary>Where an export goes: resolution of the checkpoint, atomic output, refusal to overwrite, determinism, errors.</summary>
[Collection(ExportCollection.Name)]
public sealed class ExportOutputTests(ExportFixture fixture)
{
    private ExportOptions Options(string output) => new() { Checkpoint = fixture.RunDirectory, Output = output };

    [Fact]
    public async Task ReExport_WritesTheSameBytesInEveryFile()
    {
        var first = await ModelExporter.ExportAsync(Options(fixture.NewPath("again-1")) with { DoubleQuant = true, MaxShardBytes = 150_000 });
        var second = await ModelExporter.ExportAsync(Options(fixture.NewPath("again-2")) with { DoubleQuant = true, MaxShardBytes = 150_000 });

        Assert.Equal(first.Files, second.Files);
        Assert.Contains("model.safetensors.index.json", first.Files);
        foreach (var file in first.Files.Where(f => f != "README.md"))
        {
            Assert.True(
                File.ReadAllBytes(Path.Combine(first.OutputDirectory, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(second.OutputDirectory, file))),
                $"{file} differs between two exports");
        }

        // The card names the folder; with the same name it is the same too.
        Assert.Equal(
            File.ReadAllText(Path.Combine(first.OutputDirectory, "README.md")).Replace(Path.GetFileName(first.OutputDirectory), "X", StringComparison.Ordinal),
            File.ReadAllText(Path.Combine(second.OutputDirectory, "README.md")).Replace(Path.GetFileName(second.OutputDirectory), "X", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Checkpoint_MayBeTheRunDirectoryOrTheCheckpointFolder()
    {
        var fromRun = await ModelExporter.ExportAsync(Options(fixture.NewPath("from-run")));
        var fromFolder = await ModelExporter.ExportAsync(Options(fixture.NewPath("from-folder")) with { Checkpoint = fixture.Checkpoint });

        Assert.Equal(fixture.Checkpoint, fromRun.Checkpoint);
        Assert.Equal(fixture.Checkpoint, fromFolder.Checkpoint);
        Assert.Equal(
            File.ReadAllBytes(Path.Combine(fromRun.OutputDirectory, "model.safetensors")),
            File.ReadAllBytes(Path.Combine(fromFolder.OutputDirectory, "model.safetensors")));
    }

    [Fact]
    public async Task Export_CopiesTheTokenizerAndWritesTheModelFiles()
    {
        var result = await ModelExporter.ExportAsync(Options(fixture.NewPath("files")));

        Assert.Equal(["README.md", "config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"], result.Files);
        Assert.Equal(File.ReadAllBytes(Path.Combine(fixture.Checkpoint, "tokenizer.model")), File.ReadAllBytes(Path.Combine(result.OutputDirectory, "tokenizer.model")));
        Assert.Equal(Directory.EnumerateFiles(result.OutputDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal), result.Files);
    }

    [Fact]
    public async Task CorruptTensor_FailsNamingItsFileAndTensor_AndLeavesNoOutput()
    {
        // A code table that is not NF4's, in the second decoder layer: the names and shapes check out, so the export gets
        // halfway before reading it.
        var corrupt = CopyCheckpoint("corrupt");
        const string bad = "model.layers.1.mlp.up_proj.weight.quant_map";
        RewriteModelFile(corrupt, bad, data => data.AsSpan().Fill(0));
        var output = fixture.NewPath("from-corrupt");

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => ModelExporter.ExportAsync(Options(output) with { Checkpoint = corrupt }));

        Assert.Contains(bad, error.Message);
        Assert.Contains(Path.Combine(corrupt, "model.safetensors"), error.Message);
        AssertNothingWritten(output);
    }

    [Fact]
    public async Task MissingAdapter_FailsBeforeAnyWork_NamingTheTensorAndFile()
    {
        var broken = CopyCheckpoint("no-adapter");
        var adapters = Path.Combine(broken, LoqtCheckpoint.AdaptersFileName);
        const string missing = "model.layers.0.self_attn.v_proj.adapter";
        using (var source = SafeTensorsFile.Open(Path.Combine(fixture.Checkpoint, LoqtCheckpoint.AdaptersFileName)))
        using (var writer = new SafeTensorsWriter(adapters))
        {
            foreach (var info in source.Tensors.Where(t => t.Name != missing))
            {
                writer.Add(info.Name, info.DType, info.Shape, source.GetBytes(info.Name));
            }

            writer.Complete();
        }

        var output = fixture.NewPath("from-broken");
        var progress = new RecordingProgress();

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => ModelExporter.ExportAsync(Options(output) with { Checkpoint = broken }, progress));

        Assert.Contains(missing, error.Message);
        Assert.Contains(adapters, error.Message);
        Assert.Empty(progress.Reports);
        AssertNothingWritten(output);
    }

    [Fact]
    public async Task Cancellation_LeavesNoOutputAndNoTemporaryFolder()
    {
        var output = fixture.NewPath("cancelled");
        using var cancel = new CancellationTokenSource();
        var progress = new RecordingProgress(p =>
        {
            if (p.Index == 5)
            {
                cancel.Cancel();
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ModelExporter.ExportAsync(Options(output), progress, cancel.Token));

        Assert.Equal(6, progress.Reports.Count);
        AssertNothingWritten(output);
    }

    [Fact]
    public async Task NonEmptyOutput_IsRefusedBeforeAnyWork()
    {
        var output = fixture.NewPath("occupied");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        var progress = new RecordingProgress();

        var error = await Assert.ThrowsAsync<IOException>(() => ModelExporter.ExportAsync(Options(output), progress));

        Assert.Contains(output, error.Message);
        Assert.Contains("--force", error.Message);
        Assert.Empty(progress.Reports);
        Assert.Equal(["notes.txt"], Directory.EnumerateFiles(output).Select(Path.GetFileName));
    }

    [Fact]
    public async Task EmptyOutputFolder_IsFilled()
    {
        var output = fixture.NewPath("empty");
        Directory.CreateDirectory(output);

        var result = await ModelExporter.ExportAsync(Options(output));

        Assert.Equal(output, result.OutputDirectory);
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
    }

    [Fact]
    public async Task Force_ReplacesAnEarlierExport_AndAFailedOneKeepsIt()
    {
        var output = fixture.NewPath("replaced");
        await ModelExporter.ExportAsync(Options(output) with { Format = ExportFormat.BFloat16 });
        var corrupt = CopyCheckpoint("corrupt-force");
        RewriteModelFile(corrupt, "model.layers.1.mlp.up_proj.weight.quant_map", data => data.AsSpan().Fill(0));

        await Assert.ThrowsAsync<InvalidDataException>(() => ModelExporter.ExportAsync(Options(output) with { Checkpoint = corrupt, Force = true }));
        Assert.Contains("\"torch_dtype\": \"bfloat16\"", File.ReadAllText(Path.Combine(output, "config.json")));

        await ModelExporter.ExportAsync(Options(output) with { Force = true });
        Assert.Contains("quantization_config", File.ReadAllText(Path.Combine(output, "config.json")));
        Assert.Equal([Path.GetFileName(output)], Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(output)!)
            .Select(Path.GetFileName).Where(n => n!.Contains("replaced", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("inside")]
    [InlineData("run")]
    public async Task OutputOverlappingTheCheckpoint_IsRefused(string where)
    {
        var output = where == "inside" ? Path.Combine(fixture.Checkpoint, "export") : fixture.RunDirectory;

        var error = await Assert.ThrowsAsync<ArgumentException>(() => ModelExporter.ExportAsync(Options(output) with { Force = true }));

        Assert.Contains("overlaps the checkpoint", error.Message);
        Assert.True(File.Exists(Path.Combine(fixture.Checkpoint, CheckpointDirectory.TrainerStateFileName)));
    }

    [Fact]
    public async Task NotALoqtCheckpoint_IsRefusedPointingToQuantize()
    {
        var error = await Assert.ThrowsAsync<FileNotFoundException>(() =>
            ModelExporter.ExportAsync(Options(fixture.NewPath("plain")) with { Checkpoint = ExportFixture.TinyLlama }));

        Assert.Contains("loqt quantize", error.Message);
        Assert.Contains(ExportFixture.TinyLlama, error.Message);
    }

    [Fact]
    public async Task MissingCheckpoint_IsRefusedNamingIt()
    {
        var missing = Path.Combine(fixture.Root, "no-such-run");

        var error = await Assert.ThrowsAsync<DirectoryNotFoundException>(() => ModelExporter.ExportAsync(Options(fixture.NewPath("x")) with { Checkpoint = missing }));

        Assert.Contains(missing, error.Message);
    }

    [Theory]
    [InlineData("double-quant")]
    [InlineData("compute-dtype")]
    public async Task Nf4OnlyOptions_WithAFullPrecisionFormat_AreRefused(string option)
    {
        var options = Options(fixture.NewPath("bad")) with { Format = ExportFormat.BFloat16 };
        options = option == "double-quant" ? options with { DoubleQuant = true } : options with { ComputeDType = TorchSharp.torch.ScalarType.Float16 };

        var error = await Assert.ThrowsAnyAsync<ArgumentException>(() => ModelExporter.ExportAsync(options));

        Assert.Contains("--" + option, error.Message);
    }

    private string CopyCheckpoint(string name)
    {
        var copy = fixture.NewPath(name);
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.EnumerateFiles(fixture.Checkpoint))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        return copy;
    }

    /// <summary>Rewrites the copy's model.safetensors with one tensor's bytes changed (same dtype and shape).</summary>
    private void RewriteModelFile(string checkpoint, string tensor, Action<byte[]> change)
    {
        var path = Path.Combine(checkpoint, LoqtCheckpoint.ModelFileName);
        File.Delete(path);
        using var source = SafeTensorsFile.Open(Path.Combine(fixture.Checkpoint, LoqtCheckpoint.ModelFileName));
        using var writer = new SafeTensorsWriter(path);
        foreach (var info in source.Tensors)
        {
            var data = source.GetBytes(info.Name).ToArray();
            if (info.Name == tensor)
            {
                change(data);
            }

            writer.Add(info.Name, info.DType, info.Shape, data);
        }

        writer.Complete();
    }

    private static void AssertNothingWritten(string output)
    {
        Assert.False(Directory.Exists(output), $"{output} was created");
        var parent = Path.GetDirectoryName(output)!;
        if (Directory.Exists(parent))
        {
            Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(parent), e => Path.GetFileName(e).Contains(Path.GetFileName(output), StringComparison.Ordinal));
        }
    }

    private sealed class RecordingProgress(Action<ExportProgress>? onReport = null) : IProgress<ExportProgress>
    {
        public List<ExportProgress> Reports { get; } = [];

        public void Report(ExportProgress value)
        {
            Reports.Add(value);
            onReport?.Invoke(value);
        }
    }
}
