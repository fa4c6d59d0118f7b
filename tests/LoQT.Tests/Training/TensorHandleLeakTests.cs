using LoQT.Data;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Tests.SafeTensors;
using LoQT.Training;
using TorchSharp;

namespace LoQT.Tests.Training;

/// <summary>
/// Building and training a model leave no tensor handle behind: an undisposed handle keeps its storage (the F32 draw of a
/// whole matrix) alive until the GC happens to finalize it, which in a training process may be never.
/// </summary>
public sealed class TensorHandleLeakTests
{
    private static readonly LlamaConfig Config = new()
    {
        HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, VocabSize = 100,
        PadTokenId = -1, // the presets' padding row, zeroed at initialization
    };

    private static long Live => DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;

    [Fact]
    public void CreateRandom_ThenDispose_LeavesNoLiveTensorOnThisThread()
    {
        var config = Config;
        var before = DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;

        LlamaForCausalLM.CreateRandom(config, seed: 1).Dispose();

        Assert.Equal(before, DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void LoqtLayers_CreateRandomThenDispose_LeaveNoLiveTensorOnThisThread()
    {
        var before = Live;

        LoqtCheckpoint.CreateRandom(Config, LoqtMethod.Loqt, new LoqtOptions { Rank = 4 }, LlamaLoadOptions.AllProjections, seed: 1).Model.Dispose();

        Assert.Equal(before, Live);
    }

    [Fact]
    public async Task TrainingSteps_WithReinitializations_LeaveNoLiveTensorOnThisThread()
    {
        using var folder = new ScratchFolder();
        var options = new TrainingOptions
        {
            Layers = new LoqtOptions { Rank = 4, ErrorCompensationIterations = 1 }, Schedule = MergeSchedule.Static(2), Steps = 3,
            BatchSize = 1, SequenceLength = 8, Optimizer = OptimizerKind.AdamW8bit, PerLayerUpdates = true,
        };
        var data = TokenDataset.RandomTokens(Config.VocabSize, 3, 8, seed: 2);
        var before = Live;

        await Trainer.RunAsync(new TrainingRun { Config = Config, Dataset = data.Source, TrainData = data, OutputDirectory = folder.Path, Options = options, WriteCheckpoints = false });

        Assert.Equal(before, Live);
    }
}
