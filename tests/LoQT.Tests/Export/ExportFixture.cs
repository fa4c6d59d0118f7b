using System.Collections.Concurrent;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Tests.Support;
using LoQT.Training;
using TorchSharp;

namespace LoQT.Tests.Export;

/// <summary>
/// Tiny LoQT checkpoints trained once for all export tests with the real trainer on the tiny-llama fixture: the main
/// one (<c>loqt</c>) re-initializes at steps 0 and 3 and trains B for two steps after the second, so its B ≠ 0 and its
/// P comes from a real gradient; the baselines train for two steps.
/// </summary>
public sealed class ExportFixture : IAsyncLifetime
{
    private readonly ConcurrentDictionary<LoqtMethod, Lazy<Task<string>>> checkpoints = new();

    public string Root { get; } = Directory.CreateTempSubdirectory("loqt-export-").FullName;

    public string TrainFile => Path.Combine(Root, "train.jsonl");

    public string EvalFile => Path.Combine(Root, "valid.jsonl");

    /// <summary>The training output directory of the main (<c>loqt</c>) run.</summary>
    public string RunDirectory => Path.Combine(Root, "run-loqt");

    /// <summary>The main run's checkpoint folder.</summary>
    public string Checkpoint { get; private set; } = "";

    public static string TinyLlama => TestPaths.Fixture("tiny-llama");

    public async Task InitializeAsync()
    {
        // A slice of the real corpus: enough for a few batches of tiny-llama, small enough to stay fast.
        await File.WriteAllLinesAsync(TrainFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "train.jsonl")).Take(300));
        await File.WriteAllLinesAsync(EvalFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "valid.jsonl")).Take(10));
        Checkpoint = await CheckpointOf(LoqtMethod.Loqt);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Root, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>A checkpoint trained with <paramref name="method"/> (trained on first use, then shared).</summary>
    public Task<string> CheckpointOf(LoqtMethod method) =>
        checkpoints.GetOrAdd(method, m => new Lazy<Task<string>>(() => TrainAsync(m))).Value;

    /// <summary>A path under the fixture's root that does not exist yet, for one test's output.</summary>
    public string NewPath(string name) => Path.Combine(Root, "out", name + "-" + Guid.NewGuid().ToString("N")[..8]);

    private async Task<string> TrainAsync(LoqtMethod method)
    {
        var main = method == LoqtMethod.Loqt;
        var options = new TrainingOptions
        {
            Method = method,
            Layers = new LoqtOptions { Rank = 4, ErrorCompensationIterations = 2 },
            Schedule = MergeSchedule.Exponential(3, 1.2),
            Steps = main ? 6 : 2,
            BatchSize = 2,
            SequenceLength = 32,
            LearningRate = 1e-3,
            Seed = 5,
        };
        var result = await Trainer.RunAsync(new TrainingRun
        {
            ModelDirectory = TinyLlama,
            Dataset = TrainFile,
            EvalDataset = main ? EvalFile : null,
            OutputDirectory = Path.Combine(Root, "run-" + method.ToName()),
            Options = options,
        });
        return result.Checkpoint ?? throw new InvalidOperationException("The fixture's training run wrote no checkpoint.");
    }
}

[CollectionDefinition(Name)]
public sealed class ExportCollection : ICollectionFixture<ExportFixture>
{
    public const string Name = "export";
}

/// <summary>Helpers the export tests share.</summary>
internal static class ExportTestSupport
{
    /// <summary>Runs <c>loqt</c> in-process with captured stdout and stderr.</summary>
    public static Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args) => LoQT.Tests.Hub.HubCliRunner.RunAsync(args);

    public static string LastLine(string text) => LoQT.Tests.Hub.HubCliRunner.LastLine(text);

    /// <summary>Each linear layer's merged weight (fp32) as the checkpoint's own layers compute it, by weight name.</summary>
    public static Dictionary<string, torch.Tensor> MergedWeights(string checkpoint)
    {
        var (model, _, _) = LoqtCheckpoint.Load(checkpoint, trainable: false);
        using (model)
        {
            return model.LinearLayers.ToDictionary(
                l => l.Key + ".weight",
                l => l.Value switch
                {
                    LoqtLinear loqt => loqt.MergedWeight(),
                    LoraLinear lora => lora.MergedWeight(),
                    TrainableDenseLinear dense => dense.Weight.detach().to(torch.ScalarType.Float32, copy: true),
                    var other => throw new InvalidOperationException($"unexpected layer {other.GetType().Name}"),
                },
                StringComparer.Ordinal);
        }
    }

    /// <summary>Every parameter of the checkpoint's model that is not part of a linear layer (embedding, norms), by name, as fp32 copies.</summary>
    public static Dictionary<string, torch.Tensor> OtherParameters(string checkpoint)
    {
        var (model, _, _) = LoqtCheckpoint.Load(checkpoint, trainable: false);
        using (model)
        {
            var linear = model.LinearLayers.Select(l => l.Key + ".").ToArray();
            return model.named_parameters()
                .Where(p => !linear.Any(prefix => p.name.StartsWith(prefix, StringComparison.Ordinal)))
                .ToDictionary(p => p.name, p => p.parameter.detach().to(torch.ScalarType.Float32, copy: true), StringComparer.Ordinal);
        }
    }

    public static void DisposeAll(Dictionary<string, torch.Tensor> tensors)
    {
        foreach (var tensor in tensors.Values)
        {
            tensor.Dispose();
        }
    }

    /// <summary>
    /// A LoQT model folder of <paramref name="shape"/> with random W, NF4 P and B ≠ 0, built layer by layer without
    /// training (for shapes the trainer cannot reach cheaply: no tokenizer, or large).
    /// </summary>
    public static string CreateRandomCheckpoint(string folder, LlamaConfig shape)
    {
        var options = new LoqtOptions { Rank = 4, ComputeDType = torch.ScalarType.Float32 };
        var (model, _) = LoqtCheckpoint.CreateRandom(shape, LoqtMethod.Loqt, options, LlamaLoadOptions.AllProjections, seed: 1);
        using (model)
        {
            var generator = new torch.Generator(2);
            using (torch.no_grad())
            {
                foreach (var layer in model.LinearLayers.Select(l => l.Value).OfType<LoqtLinear>())
                {
                    using var p = torch.randn(layer.Side.ProjectionShape(layer.InFeatures, layer.OutFeatures, layer.Rank), generator: generator);
                    layer.RestoreProjection(FrozenMatrix.Create(p, quantize: true, 64, false, torch.ScalarType.Float32));
                    layer.Adapter.copy_(torch.randn(layer.Adapter.shape, generator: generator).mul_(1e-3));
                }
            }

            LoqtCheckpoint.Save(folder, model, LoqtMethod.Loqt, options, LlamaLoadOptions.AllProjections);
        }

        return folder;
    }
}
