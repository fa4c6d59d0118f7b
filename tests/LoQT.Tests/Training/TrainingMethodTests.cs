using LoQT.Data;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Tests.Support;
using LoQT.Training;

namespace LoQT.Tests.Training;

/// <summary>Every training method trains tiny-llama for a few steps and lowers its validation loss.</summary>
public sealed class TrainingMethodTests : IDisposable
{
    private const int SequenceLength = 32;
    private readonly string _dir = Directory.CreateTempSubdirectory("loqt-methods-").FullName;

    public TrainingMethodTests()
    {
        File.WriteAllLines(TrainFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "train.jsonl")).Take(300));
        File.WriteAllLines(EvalFile, File.ReadLines(Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "valid.jsonl")).Take(30));
    }

    private string TrainFile => Path.Combine(_dir, "train.jsonl");

    private string EvalFile => Path.Combine(_dir, "valid.jsonl");

    private static string TinyLlama => TestPaths.Fixture("tiny-llama");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("loqt")]
    [InlineData("loqt-nq")]
    [InlineData("full")]
    [InlineData("lora")]
    [InlineData("galore")]
    public async Task Method_LowersTheValidationLoss(string method)
    {
        var before = await InitialEvalLoss();
        var options = new TrainingOptions
        {
            Method = LoqtMethodNames.Parse(method),
            Layers = new LoqtOptions { Rank = 8, ErrorCompensationIterations = 2 },
            Schedule = MergeSchedule.Exponential(4, 1.2),
            Steps = 10,
            BatchSize = 4,
            SequenceLength = SequenceLength,
            LearningRate = 1e-2,
            WarmupSteps = 1,
            Seed = 1,
        };

        var result = await Trainer.RunAsync(new TrainingRun
        {
            ModelDirectory = TinyLlama, Dataset = TrainFile, EvalDataset = EvalFile, OutputDirectory = Path.Combine(_dir, method), Options = options,
        });

        // tiny-llama's weights are random (loss ≈ ln 512 = 6.2 nats); ten steps on real text learn at least its
        // token frequencies, which is worth far more than 0.3 nats.
        Assert.Equal(10, result.Steps);
        Assert.True(result.EvalLoss < before - 0.3, $"{method}: eval loss {result.EvalLoss} after training vs {before} before");
    }

    private async Task<double> InitialEvalLoss()
    {
        using var model = LlamaForCausalLM.Load(TinyLlama);
        var tokenizer = TokenizerLoader.FromDirectory(TinyLlama);
        var eval = await TokenDataset.LoadAsync(EvalFile, tokenizer, new TokenDatasetOptions { SequenceLength = SequenceLength });
        return LlamaEvaluator.Evaluate(model, eval, 4).Loss;
    }
}
