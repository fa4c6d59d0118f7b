using LoQT.Loqt;
using LoQT.SafeTensors;
using LoQT.Tests.Support;
using LoQT.Training;

namespace LoQT.Tests.Training;

public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loqt-trainer-").FullName;

    public TrainerTests()
    {
        // A slice of the real corpus: enough for a few batches of tiny-llama, small enough to stay fast.
        File.WriteAllLines(TrainFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "train.jsonl")).Take(300));
        File.WriteAllLines(EvalFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "valid.jsonl")).Take(20));
    }

    private string TrainFile => Path.Combine(_dir, "train.jsonl");

    private string EvalFile => Path.Combine(_dir, "valid.jsonl");

    private static string TinyLlama => TestPaths.Fixture("tiny-llama");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TrainingOptions Options(long steps) => new()
    {
        Method = LoqtMethod.Loqt,
        Layers = new LoqtOptions { Rank = 4, ErrorCompensationIterations = 2 },
        Schedule = MergeSchedule.Exponential(3, 1.2),
        Steps = steps,
        BatchSize = 2,
        SequenceLength = 32,
        LearningRate = 1e-3,
        Seed = 5,
    };

    private TrainingRun Run(string output, TrainingOptions options, string? resume = null) => new()
    {
        ModelDirectory = resume is null ? TinyLlama : null,
        Dataset = TrainFile,
        OutputDirectory = output,
        Options = options,
        ResumeFrom = resume,
    };

    private static byte[] Bytes(string checkpoint, string file) => File.ReadAllBytes(Path.Combine(checkpoint, file));

    [Fact]
    public async Task Resume_ContinuesBitForBit()
    {
        var straight = await Trainer.RunAsync(Run(Path.Combine(_dir, "straight"), Options(8)));

        // The same run (same options, so the same LR schedule), stopped after step 4 as Ctrl-C would, then resumed.
        var halves = Path.Combine(_dir, "halves");
        using var cancel = new CancellationTokenSource();
        var firstHalf = await Trainer.RunAsync(Run(halves, Options(8)), new SynchronousProgress(r =>
        {
            if (r.Step == 4)
            {
                cancel.Cancel();
            }
        }), null, cancel.Token);
        Assert.Equal(4, firstHalf.Steps);
        var resumed = await Trainer.RunAsync(Run(halves, Options(8), resume: halves));

        Assert.Equal(8, resumed.Steps);
        Assert.Equal(straight.TrainLoss, resumed.TrainLoss);
        foreach (var file in new[] { LoqtCheckpoint.ModelFileName, LoqtCheckpoint.AdaptersFileName, TrainerState.OptimizerFileName })
        {
            Assert.True(Bytes(straight.Checkpoint!, file).AsSpan().SequenceEqual(Bytes(resumed.Checkpoint!, file)), $"{file} differs after resume");
        }
    }

    [Fact]
    public async Task OutputDirectory_HoldsACheckpointThatReloadsToTheSameEvalLoss()
    {
        var output = Path.Combine(_dir, "out");
        var result = await Trainer.RunAsync(Run(output, Options(4)) with { EvalDataset = EvalFile });

        var checkpoint = CheckpointDirectory.Resolve(output)!;
        var (model, _, _) = LoqtCheckpoint.Load(checkpoint, trainable: false);
        using (model)
        {
            var tokenizer = LoQT.Data.TokenizerLoader.FromDirectory(checkpoint);
            var eval = await LoQT.Data.TokenDataset.LoadAsync(EvalFile, tokenizer, new LoQT.Data.TokenDatasetOptions { SequenceLength = 32 });
            var reloaded = LoQT.Models.Llama.LlamaEvaluator.Evaluate(model, eval, 2);
            Assert.Equal(result.EvalLoss!.Value, reloaded.Loss, 10);
        }
    }

    [Fact]
    public async Task Metrics_HaveOneLinePerStepAndMarkReinitializations()
    {
        var output = Path.Combine(_dir, "m");
        await Trainer.RunAsync(Run(output, Options(5)));
        var records = MetricsLog.Read(Path.Combine(output, MetricsLog.FileName));
        Assert.Equal([1, 2, 3, 4, 5], records.Select(r => r.GetProperty("step").GetInt32()));
        // Schedule: re-initialize at steps 0 and 3 (reported after them as steps 1 and 4).
        Assert.Equal([true, false, false, true, false], records.Select(r => r.GetProperty("reinitialized").GetBoolean()));
    }

    [Fact]
    public async Task Cancellation_SavesACheckpointToResumeFrom()
    {
        var output = Path.Combine(_dir, "c");
        using var cancel = new CancellationTokenSource();
        var progress = new SynchronousProgress(r =>
        {
            if (r.Step == 2)
            {
                cancel.Cancel();
            }
        });
        var result = await Trainer.RunAsync(Run(output, Options(6)), progress, null, cancel.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(2, result.Steps);
        Assert.Equal(2, TrainerState.Load(CheckpointDirectory.Resolve(output)!).Step);
    }

    [Theory]
    [InlineData("rank", 64)]
    [InlineData("seq-len", 4096)]
    public async Task OptionsThatDoNotFitTheModel_FailBeforeAnyWork(string option, int value)
    {
        var options = option == "rank" ? Options(2) with { Layers = new LoqtOptions { Rank = value } } : Options(2) with { SequenceLength = value };
        var error = await Assert.ThrowsAnyAsync<ArgumentException>(() => Trainer.RunAsync(Run(Path.Combine(_dir, "bad"), options)));
        Assert.Contains("--" + option, error.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")));
    }

    [Fact]
    public async Task NonPositiveAlpha_IsRejectedNamingTheOption()
    {
        var options = Options(2) with { Layers = new LoqtOptions { Rank = 4, Alpha = 0 } };
        var error = await Assert.ThrowsAnyAsync<ArgumentException>(() => Trainer.RunAsync(Run(Path.Combine(_dir, "bad"), options)));
        Assert.Contains("alpha", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task EmptyDataset_IsRejectedNamingTheFile()
    {
        File.WriteAllText(TrainFile, "");
        var error = await Assert.ThrowsAnyAsync<Exception>(() => Trainer.RunAsync(Run(Path.Combine(_dir, "bad"), Options(2))));
        Assert.Contains(TrainFile, error.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")));
    }

    [Fact]
    public async Task CompletionTask_RequiresPromptCompletionData()
    {
        var error = await Assert.ThrowsAnyAsync<ArgumentException>(() =>
            Trainer.RunAsync(Run(Path.Combine(_dir, "bad"), Options(2) with { Task = TrainingTask.Completion })));
        Assert.Contains("--task completion", error.Message);
    }

    [Fact]
    public async Task InMemoryDataWithoutCheckpoints_TrainsWithoutATokenizerAndWritesOnlyMetrics()
    {
        var output = Path.Combine(_dir, "bench");
        var config = LoQT.Models.Llama.LlamaConfig.Load(TinyLlama);
        var data = LoQT.Data.TokenDataset.RandomTokens(config.VocabSize, sequences: 4, sequenceLength: 32, seed: 1);

        var result = await Trainer.RunAsync(new TrainingRun
        {
            Config = config, Dataset = data.Source, TrainData = data, OutputDirectory = output, Options = Options(3), WriteCheckpoints = false,
        });

        Assert.Equal(3, result.Steps);
        Assert.Null(result.Checkpoint);
        Assert.Equal(["metrics.jsonl"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
    }

    private sealed class SynchronousProgress(Action<TrainingStepReport> report) : IProgress<TrainingStepReport>
    {
        public void Report(TrainingStepReport value) => report(value);
    }
}
