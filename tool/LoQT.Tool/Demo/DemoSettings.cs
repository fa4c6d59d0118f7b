using LoQT.Data;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Training;

namespace LoQT.Tool.Demo;

/// <summary>
/// Everything that decides a demo run: the arithmetic corpus, the tiny Llama both methods pretrain, and the training
/// options they share. <see cref="Default"/> is tuned to finish in a few minutes on two cores; <see cref="Quick"/>
/// runs the same pipeline in seconds (for tests and a smoke check), without the claim that it learns much.
/// </summary>
internal sealed record DemoSettings
{
    private readonly long _warmupSteps;

    /// <summary>Operands are below this (100: two-digit addition and subtraction).</summary>
    public required int OperandBound { get; init; }

    /// <summary>Share of the problems held out of training.</summary>
    public double HeldOutFraction { get; init; } = 0.1;

    /// <summary>The model shape (the vocabulary is the character tokenizer's).</summary>
    public required LlamaConfig Model { get; init; }

    /// <summary>Optimizer steps of each run.</summary>
    public required long Steps { get; init; }

    /// <summary>Problems per optimizer step.</summary>
    public required int BatchSize { get; init; }

    /// <summary>Peak learning rate (cosine decay after a linear warmup), the same for both methods.</summary>
    public required double LearningRate { get; init; }

    /// <summary>Linear warmup steps (at most a tenth of <see cref="Steps"/>, so a shorter <c>--steps</c> keeps a warmup that fits).</summary>
    public required long WarmupSteps
    {
        get => Math.Min(_warmupSteps, Steps / 10);
        init => _warmupSteps = value;
    }

    /// <summary>LoQT's rank r.</summary>
    public required int Rank { get; init; }

    /// <summary>LoQT's first gap T between merges (exponential schedule).</summary>
    public required int UpdateInterval { get; init; }

    /// <summary>LoQT's growth ψ of the gaps.</summary>
    public double IntervalGrowth { get; init; } = 1.2;

    /// <summary>Held-out loss is measured every this many steps (the chart's held-out curve).</summary>
    public required long EvalEvery { get; init; }

    /// <summary>Held-out problems whose greedy answers are scored for exact-match accuracy.</summary>
    public required int AccuracyProblems { get; init; }

    /// <summary>Answers of the reloaded model shown in the summary.</summary>
    public int Samples { get; init; } = 8;

    /// <summary>Seed of the split, the initial weights and the data order (the same for both methods).</summary>
    public int Seed { get; init; }

    /// <summary>The demo as the README runs it.</summary>
    public static DemoSettings Default { get; } = new()
    {
        OperandBound = 100,
        Model = TinyLlama(hidden: 128, intermediate: 256, layers: 2, heads: 4),
        Steps = 800,
        BatchSize = 256,
        LearningRate = 3e-3,
        WarmupSteps = 50,
        Rank = 64,
        UpdateInterval = 100,
        EvalEvery = 100,
        AccuracyProblems = 500,
    };

    /// <summary>A budget of seconds: a smaller model, corpus and step count; checks the pipeline, not the learning.</summary>
    public static DemoSettings Quick { get; } = new()
    {
        OperandBound = 20,
        Model = TinyLlama(hidden: 32, intermediate: 64, layers: 1, heads: 2),
        Steps = 12,
        BatchSize = 16,
        LearningRate = 3e-3,
        WarmupSteps = 2,
        Rank = 8,
        UpdateInterval = 4,
        EvalEvery = 4,
        AccuracyProblems = 20,
        Samples = 4,
    };

    /// <summary>The options of one run; only the method differs between the two.</summary>
    public TrainingOptions TrainingOptionsFor(LoqtMethod method) => new()
    {
        Method = method,
        Layers = new LoqtOptions { Rank = Rank },
        Schedule = MergeSchedule.Exponential(UpdateInterval, IntervalGrowth),
        Steps = Steps,
        BatchSize = BatchSize,
        // Each problem is its own sequence (at most BOS + "99+99=198" + EOS = 11 tokens), loss on the answer only.
        SequenceLength = Model.MaxPositionEmbeddings,
        NoPacking = true,
        Task = TrainingTask.Completion,
        LearningRate = LearningRate,
        WarmupSteps = WarmupSteps,
        EvalEvery = EvalEvery,
        KeepCheckpoints = 1,
        Seed = Seed,
    };

    /// <summary>Checks the options of both runs against the model before anything is written.</summary>
    /// <exception cref="ArgumentException">An option is out of range (named as on the command line).</exception>
    public void Validate()
    {
        foreach (var method in new[] { LoqtMethod.Loqt, LoqtMethod.Full })
        {
            var options = TrainingOptionsFor(method);
            options.Validate();
            options.ValidateFor(Model);
        }
    }

    private static LlamaConfig TinyLlama(int hidden, int intermediate, int layers, int heads) => new()
    {
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        VocabSize = ArithmeticCorpus.CharacterVocabularySize,
        MaxPositionEmbeddings = 16,
        BosTokenId = 1,
        EosTokenIds = [2],
        PadTokenId = 3,
        TorchDType = "float32",
    };
}
