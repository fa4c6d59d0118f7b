using LoQT.Loqt;
using LoQT.Tests.Support;
using LoQT.Training;
using AdamW = LoQT.Training.AdamW;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace LoQT.Tests.Training;

/// <summary>
/// Per-layer updates (each parameter stepped inside backward as its gradient completes) against the ordinary step
/// after backward.
/// </summary>
public sealed class PerLayerUpdateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loqt-perlayer-").FullName;

    public PerLayerUpdateTests()
    {
        File.WriteAllLines(TrainFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "train.jsonl")).Take(200));
    }

    private string TrainFile => Path.Combine(_dir, "train.jsonl");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(OptimizerKind.AdamW, 1)]
    [InlineData(OptimizerKind.AdamW8bit, 1)]
    [InlineData(OptimizerKind.AdamW, 2)]
    public async Task TrainingPerLayer_GivesTheSameModelAsTheOrdinaryStep(OptimizerKind optimizer, int gradientAccumulation)
    {
        // Without clipping both apply the same update to the same gradient (summed over micro-batches), through
        // LoQT's re-initialization steps too (update steps 0 and 3 of 5).
        var options = new TrainingOptions
        {
            Method = LoqtMethod.Loqt,
            Layers = new LoqtOptions { Rank = 4, ErrorCompensationIterations = 1 },
            Schedule = MergeSchedule.Static(3),
            Optimizer = optimizer,
            MaxGradNorm = 0,
            Steps = 5,
            BatchSize = 2,
            GradientAccumulation = gradientAccumulation,
            SequenceLength = 32,
            LearningRate = 1e-3,
            Seed = 3,
        };

        var ordinary = await Train("ordinary", options);
        var perLayer = await Train("per-layer", options with { PerLayerUpdates = true });

        Assert.Equal(ordinary.TrainLoss, perLayer.TrainLoss);
        Assert.NotNull(ordinary.Checkpoint);
        Assert.NotNull(perLayer.Checkpoint);
        foreach (var file in new[] { LoqtCheckpoint.ModelFileName, LoqtCheckpoint.AdaptersFileName })
        {
            Assert.True(File.ReadAllBytes(Path.Combine(ordinary.Checkpoint, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(perLayer.Checkpoint, file))), $"{file} differs");
        }
    }

    [Fact]
    public void WithClipping_PerLayerClipsEachParameterOnItsOwn()
    {
        // The global norm is not known while backward is still producing gradients, so per-layer updates clip each
        // parameter's gradient to max-grad-norm separately. Equivalent: the ordinary step, unclipped, on gradients
        // clipped one by one; different from the ordinary step's global clipping.
        using var scope = NewDisposeScope();
        var generator = new Generator(5);
        var start = new[] { randn(64, generator: generator), randn([16, 16], generator: generator) };
        var steps = Enumerable.Range(0, 4).Select(s => start.Select(p => randn(p.shape, generator: generator) * (s + 1)).ToArray()).ToArray();

        var perLayer = Run(new AdamWOptions { MaxGradNorm = 1, PerLayerUpdates = true }, (optimizer, parameters, gradients) =>
        {
            for (var i = 0; i < parameters.Length; i++)
            {
                Assert.True(optimizer.TryConsumeGradient(parameters[i], gradients[i]));
            }
        });
        var clippedOneByOne = Run(new AdamWOptions(), (_, parameters, gradients) =>
        {
            for (var i = 0; i < parameters.Length; i++)
            {
                var g = gradients[i].clone();
                GradientClipping.ClipInPlace([g], 1);
                parameters[i].grad = g;
            }
        });
        var globallyClipped = Run(new AdamWOptions { MaxGradNorm = 1 }, (_, parameters, gradients) =>
        {
            for (var i = 0; i < parameters.Length; i++)
            {
                parameters[i].grad = gradients[i].clone();
            }
        });

        for (var i = 0; i < start.Length; i++)
        {
            Assert.Equal(0f, (perLayer[i] - clippedOneByOne[i]).abs().max().item<float>());
            Assert.True((perLayer[i] - globallyClipped[i]).abs().max().item<float>() > 1e-5);
        }

        Tensor[] Run(AdamWOptions options, Action<AdamWOptimizer, Parameter[], Tensor[]> deliver)
        {
            var parameters = start.Select(p => new Parameter(p.clone())).ToArray();
            using var optimizer = new AdamW(parameters.Select((p, i) => new TrainableParameter($"p{i}", p)), options with { LearningRate = 0.1 });
            foreach (var gradients in steps)
            {
                deliver(optimizer, parameters, gradients);
                optimizer.Step();
            }

            return parameters.Select(p => p.detach().clone()).ToArray();
        }
    }

    private Task<TrainingResult> Train(string name, TrainingOptions options) => Trainer.RunAsync(new TrainingRun
    {
        ModelDirectory = TestPaths.Fixture("tiny-llama"),
        Dataset = TrainFile,
        OutputDirectory = Path.Combine(_dir, name),
        Options = options,
    });
}
