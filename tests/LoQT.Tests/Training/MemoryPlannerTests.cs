using LoQT.Models.Llama;
using LoQT.Quantization;
using LoQT.Training;
using TorchSharp;

namespace LoQT.Tests.Training;

public class MemoryPlannerTests
{
    // Two layers, hidden 64, intermediate 256: attention linears 64×64, MLP 256×64 and 64×256.
    private const string Tiny = """
        {"hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2,
         "vocab_size": 1000, "max_position_embeddings": 512}
        """;

    private static readonly MemoryPlanner Planner = new();

    private static MemoryPlan Plan(string presetOrJson, MemoryPlanOptions options) =>
        Planner.Plan(LlamaPresets.IsPreset(presetOrJson) ? LlamaPresets.GetConfigJson(presetOrJson) : presetOrJson, options);

    [Fact]
    public void Nf4Bytes_ArePackedNibblesPlusOneFp32AbsmaxPerBlockOf64()
    {
        const long N = 11008L * 4096;

        Assert.Equal(N / 2 + N / 64 * 4, MemoryPlanner.Nf4Bytes(N, doubleQuant: false));
    }

    [Fact]
    public void Nf4Bytes_WithDoubleQuant_AreOneByteAbsmaxPerBlockPlusOneFp32PerNestedBlockOf256AndTheOffset()
    {
        const long N = 11008L * 4096;
        const long Blocks = N / 64;

        Assert.Equal(N / 2 + Blocks + 4 * ((Blocks + 255) / 256) + 4, MemoryPlanner.Nf4Bytes(N, doubleQuant: true));
    }

    [Fact]
    public void Nf4Bytes_PadAnOddCountAndCountAShortLastBlock()
    {
        Assert.Equal(65 + 3 * 4, MemoryPlanner.Nf4Bytes(129, doubleQuant: false));
    }

    [Theory]
    [InlineData(96, 64, false)]
    [InlineData(129, 67, false)] // odd count, short last block
    [InlineData(300, 200, true)] // 938 absmax codes: four nested blocks, the last one short
    public void Nf4Bytes_EqualTheStorageOfAQuantizedTensor(int rows, int columns, bool doubleQuant)
    {
        using var scope = torch.NewDisposeScope();
        using var quantized = Nf4Tensor.Quantize(torch.randn(rows, columns), doubleQuant: doubleQuant);

        Assert.Equal(quantized.StorageBytes, MemoryPlanner.Nf4Bytes((long)rows * columns, doubleQuant));
    }

    [Fact]
    public void AdamW8bitState_IsTwoBytesPerElementPlusTwoFp32AbsmaxPerBlockOf256()
    {
        Assert.Equal(2 * (10_000 + 4 * 40), MemoryPlanner.AdamW8bitStateBytes(10_000));
    }

    [Fact]
    public void AdamW8bitState_OfATensorBelow4096Elements_StaysFp32()
    {
        Assert.Equal(2 * 4 * 4095, MemoryPlanner.AdamW8bitStateBytes(4095));
    }

    [Fact]
    public void Loqt_QuantizesEveryLinearOfEveryLayerToNf4()
    {
        var plan = Plan(Tiny, new MemoryPlanOptions { Rank = 8 });

        var perLayer = 4 * MemoryPlanner.Nf4Bytes(64 * 64, false) + 3 * MemoryPlanner.Nf4Bytes(256 * 64, false);
        Assert.Equal(2 * perLayer, plan.Breakdown.Weights);
    }

    [Fact]
    public void Loqt_ProjectsTheSmallerSideOfEachLinear()
    {
        var plan = Plan(Tiny, new MemoryPlanOptions { Rank = 8, QuantizeProjection = false, Dtype = ComputeDtype.Float32 });

        // P is rank × min(out, in), B rank × max(out, in); fp32, 2 layers, 4 attention + 3 MLP linears.
        Assert.Equal(4L * 2 * 8 * (4 * 64 + 3 * 64), plan.Breakdown.Projections);
        Assert.Equal(4L * 2 * 8 * (4 * 64 + 3 * 256), plan.Breakdown.Adapters);
    }

    [Fact]
    public void LoqtNq_KeepsWeightsInTheComputeDtype()
    {
        var plan = Plan(Tiny, new MemoryPlanOptions { Method = TrainingMethod.LoqtNq, Rank = 8 });

        Assert.Equal(2L * 2 * (4 * 64 * 64 + 3 * 256 * 64), plan.Breakdown.Weights);
    }

    [Fact]
    public void Lora_TrainsBothFactorsAndKeepsUnquantizedWeightsWhenAsked()
    {
        var plan = Plan(Tiny, new MemoryPlanOptions { Method = TrainingMethod.Lora, Rank = 8, QuantizeWeights = false });

        Assert.Equal(2L * 2 * 8 * (4 * (64 + 64) + 3 * (256 + 64)), plan.Breakdown.Adapters);
        Assert.Equal(2L * 2 * (4 * 64 * 64 + 3 * 256 * 64), plan.Breakdown.Weights);
        Assert.Equal(0, plan.Breakdown.Projections);
    }

    [Fact]
    public void DoubleQuant_ShrinksTheQuantizedWeights()
    {
        var single = Plan("7b", new MemoryPlanOptions());
        var nested = Plan("7b", new MemoryPlanOptions { DoubleQuant = true });

        Assert.True(nested.Breakdown.Weights < single.Breakdown.Weights);
        // 0.5625 vs ≈0.5159 bytes per weight; 1e-3 covers the per-tensor rounding of ceil().
        Assert.InRange((double)nested.Breakdown.Weights / single.Breakdown.Weights, 0.5159 / 0.5625 - 1e-3, 0.5159 / 0.5625 + 1e-3);
    }

    [Fact]
    public void EightBitOptimizerState_IsAboutAQuarterOfFp32State()
    {
        var fp32 = Plan("7b", new MemoryPlanOptions { Rank = 1024 });
        var eightBit = Plan("7b", new MemoryPlanOptions { Rank = 1024, Optimizer = OptimizerKind.AdamW8bit });

        Assert.True(eightBit.Breakdown.OptimizerState < fp32.Breakdown.OptimizerState);
        // 2 B + 8/256 B of absmax per element against 8 B.
        Assert.InRange((double)eightBit.Breakdown.OptimizerState / fp32.Breakdown.OptimizerState, 0.25, 2.04 / 8);
    }

    [Fact]
    public void PerLayerUpdates_KeepOnlyTheLargestGradientAlive()
    {
        var whole = Plan("7b", new MemoryPlanOptions { Rank = 1024 });
        var perLayer = Plan("7b", new MemoryPlanOptions { Rank = 1024, PerLayerUpdates = true });

        Assert.True(perLayer.Breakdown.Gradients < whole.Breakdown.Gradients);
        Assert.Equal(2L * 32000 * 4096, perLayer.Breakdown.Gradients); // bf16 gradient of the embedding, the largest trainable tensor
    }

    [Fact]
    public void FrozenEmbeddings_LeaveOnlyTheAdaptersTrainable()
    {
        var plan = Plan(Tiny, new MemoryPlanOptions { Rank = 8, TrainNonQuantizedParameters = false });

        Assert.Equal(2L * 8 * (4 * 64 + 3 * 256), plan.TrainableParameters);
        Assert.Equal(2 * plan.TrainableParameters, plan.Breakdown.Gradients);
        Assert.Equal(8 * plan.TrainableParameters, plan.Breakdown.OptimizerState);
    }

    [Theory]
    [InlineData(OptimizerKind.AdamW, false)]
    [InlineData(OptimizerKind.AdamW8bit, true)]
    public void For7b_LoqtNeedsLessThanGaloreWhichNeedsLessThanFull(OptimizerKind optimizer, bool perLayer)
    {
        MemoryPlan P(TrainingMethod method) => Plan("7b", new MemoryPlanOptions
        {
            Method = method, Rank = 1024, Optimizer = optimizer, PerLayerUpdates = perLayer,
        });

        Assert.True(P(TrainingMethod.Loqt).Total < P(TrainingMethod.Galore).Total);
        Assert.True(P(TrainingMethod.Galore).Total < P(TrainingMethod.Full).Total);
    }

    [Fact]
    public void FitsIn_IsTrueUpToTheTotalAndFalseBelowIt()
    {
        var plan = Plan("1b", new MemoryPlanOptions());

        Assert.True(plan.FitsIn(plan.Total));
        Assert.False(plan.FitsIn(plan.Total - 1));
    }

    // The loss's fp32 buffers are set against the gradients and update scratch that follow them; without them the
    // activations are what autograd keeps, and scale simply.
    private static readonly MemoryPlanner WithoutLossBuffers = new(MemoryCoefficients.Default with { HeadChunkFp32Buffers = 0, CountHeadWeightBuffers = false });

    [Fact]
    public void FusedHead_OnTheCpuInBf16_CountsTheFp32CopyOfTheHeadAndItsGradient()
    {
        var config = LlamaPresets.GetConfigJson("130m");
        var options = new MemoryPlanOptions { PerLayerUpdates = true };
        var withHead = new MemoryPlanner().Plan(config, options).Breakdown.Activations;
        var withoutHead = new MemoryPlanner(MemoryCoefficients.Default with { CountHeadWeightBuffers = false }).Plan(config, options).Breakdown.Activations;
        var headElements = 32000L * 768;

        // W's fp32 copy and the fp32 gradient accumulator (8 bytes an element) are new at the head; the bf16 gradient
        // they produce is the gradient that per-layer updates hold anyway.
        Assert.InRange(withHead - withoutHead, 6 * headElements, 8 * headElements + (64L << 20));
    }

    [Fact]
    public void FusedHead_InFp32_CopiesNoWeight()
    {
        var config = LlamaPresets.GetConfigJson("130m");
        var bf16 = new MemoryPlanOptions { PerLayerUpdates = true };
        var fp32 = bf16 with { Dtype = ComputeDtype.Float32 };
        var planner = new MemoryPlanner();
        var withoutHead = new MemoryPlanner(MemoryCoefficients.Default with { CountHeadWeightBuffers = false });
        var headElements = 32000L * 768;

        var bf16Head = planner.Plan(config, bf16).Breakdown.Activations - withoutHead.Plan(config, bf16).Breakdown.Activations;
        var fp32Head = planner.Plan(config, fp32).Breakdown.Activations - withoutHead.Plan(config, fp32).Breakdown.Activations;

        Assert.True(fp32Head < bf16Head - (3 * headElements), $"fp32 head {fp32Head} B, bf16 head {bf16Head} B");
    }

    [Fact]
    public void Activations_AreProportionalToTheBatchSize()
    {
        var config = LlamaPresets.GetConfigJson("130m");
        var one = WithoutLossBuffers.Plan(config, new MemoryPlanOptions { BatchSize = 1 }).Breakdown.Activations;
        var four = WithoutLossBuffers.Plan(config, new MemoryPlanOptions { BatchSize = 4 }).Breakdown.Activations;

        Assert.InRange(four - 4 * one, -4, 4); // each plan rounds its bytes up once
    }

    [Fact]
    public void Activations_GrowFasterThanTheSequence_WithExplicitAttention()
    {
        var at256 = Plan("130m", new MemoryPlanOptions { SequenceLength = 256 }).Breakdown.Activations;
        var at512 = Plan("130m", new MemoryPlanOptions { SequenceLength = 512 }).Breakdown.Activations;

        Assert.True(at512 > 2 * at256 + 1);
    }

    [Fact]
    public void Activations_AreLinearInTheSequence_WithFusedAttention()
    {
        var fused = new MemoryPlanner(MemoryCoefficients.Default with { ExplicitAttention = false, HeadChunkFp32Buffers = 0, CountHeadWeightBuffers = false });
        var config = LlamaPresets.GetConfigJson("130m");

        var at256 = fused.Plan(config, new MemoryPlanOptions { SequenceLength = 256 }).Breakdown.Activations;
        var at512 = fused.Plan(config, new MemoryPlanOptions { SequenceLength = 512 }).Breakdown.Activations;

        Assert.InRange(at512 - 2 * at256, -2, 2); // each plan rounds its bytes up once
    }

    [Fact]
    public void Fp32Compute_NeedsMoreActivationsThanBf16()
    {
        // What autograd keeps; the fused head's CPU copy of W makes bf16's transient the larger one (tested above).
        var config = LlamaPresets.GetConfigJson("60m");
        var bf16 = WithoutLossBuffers.Plan(config, new MemoryPlanOptions()).Breakdown.Activations;
        var fp32 = WithoutLossBuffers.Plan(config, new MemoryPlanOptions { Dtype = ComputeDtype.Float32 }).Breakdown.Activations;

        Assert.True(fp32 > bf16);
    }

    [Fact]
    public void UpdateTransient_ExistsOnlyForMethodsThatRecomputeAProjection()
    {
        // Without the fused head's buffers, which at 1b exceed the re-initialization's own transient.
        MemoryPlan P(TrainingMethod method) => WithoutLossBuffers.Plan(LlamaPresets.GetConfigJson("1b"), new MemoryPlanOptions { Method = method, Optimizer = OptimizerKind.AdamW8bit, PerLayerUpdates = true });

        Assert.Equal(0, P(TrainingMethod.Full).Breakdown.UpdateTransient);
        Assert.Equal(0, P(TrainingMethod.Lora).Breakdown.UpdateTransient);
        Assert.True(P(TrainingMethod.Galore).Breakdown.UpdateTransient > 0);
        Assert.True(P(TrainingMethod.Loqt).Breakdown.UpdateTransient > 0);
    }

    [Fact]
    public void Reinitialization_CountsOnlyWhatItExceedsAnOrdinaryStep()
    {
        // A narrow model with a large vocabulary: the ordinary step's lm_head gradient and the loss's buffers exceed one
        // small layer's SVD and error compensation, which happen after both are gone.
        var plan = Plan("20m", new MemoryPlanOptions { Optimizer = OptimizerKind.AdamW8bit, PerLayerUpdates = true });

        Assert.Equal(0, plan.Breakdown.UpdateTransient);
        Assert.Equal(plan.Total, plan.Breakdown.SteadyTotal);
    }

    [Fact]
    public void Overhead_FollowsTheDevice()
    {
        var cpu = Plan("20m", new MemoryPlanOptions { Device = DeviceKind.Cpu });
        var cuda = Plan("20m", new MemoryPlanOptions { Device = DeviceKind.Cuda });

        Assert.Equal(MemoryCoefficients.Default.CpuOverheadBytes, cpu.Breakdown.Overhead);
        Assert.Equal(MemoryCoefficients.Default.CudaOverheadBytes, cuda.Breakdown.Overhead);
    }

    [Fact]
    public void Coefficients_ReplaceTheDefaults()
    {
        var config = LlamaPresets.GetConfigJson("20m");
        var calibrated = new MemoryPlanner(MemoryCoefficients.Default with { CpuOverheadBytes = 0, AdamWMomentBytes = 2 });

        var standard = Planner.Plan(config, new MemoryPlanOptions());
        var plan = calibrated.Plan(config, new MemoryPlanOptions());

        Assert.Equal(0, plan.Breakdown.Overhead);
        Assert.Equal(standard.Breakdown.OptimizerState / 2, plan.Breakdown.OptimizerState);
    }

    [Fact]
    public void ChunkedOptimizerSteps_ShrinkThePerLayerWorkspace()
    {
        var config = LlamaPresets.GetConfigJson("7b");
        var options = new MemoryPlanOptions { Rank = 1024, Optimizer = OptimizerKind.AdamW8bit, PerLayerUpdates = true };
        var wholeTensors = new MemoryPlanner(MemoryCoefficients.Default with { OptimizerStepChunkElements = 0 });

        Assert.True(Planner.Plan(config, options).Breakdown.Workspace < wholeTensors.Plan(config, options).Breakdown.Workspace);
    }

    [Fact]
    public void DefaultRank_IsTheReferences128_OrAQuarterOfANarrowModel()
    {
        Assert.Equal(128, Plan("7b", new MemoryPlanOptions()).Options.Rank);
        Assert.Equal(32, Plan("9m", new MemoryPlanOptions()).Options.Rank);
    }

    [Fact]
    public void Rank_AsWideAsTheNarrowestLinear_IsRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => Plan(Tiny, new MemoryPlanOptions { Rank = 64 }));

        Assert.Contains("Rank 64", error.Message);
        Assert.Contains("q_proj is 64×64", error.Message);
    }

    [Fact]
    public void Rank_IsIgnoredByFullTraining()
    {
        var plan = Plan(Tiny, new MemoryPlanOptions { Method = TrainingMethod.Full, Rank = 4096 });

        Assert.Equal(0, plan.Breakdown.Adapters);
    }

    [Fact]
    public void SequenceLongerThanThePositions_IsRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => Plan(Tiny, new MemoryPlanOptions { Rank = 8, SequenceLength = 513 }));

        Assert.Contains("max_position_embeddings (512)", error.Message);
    }

    [Fact]
    public void ZeroBatchSize_IsRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => Plan(Tiny, new MemoryPlanOptions { Rank = 8, BatchSize = 0 }));

        Assert.Contains("Batch size", error.Message);
    }
}
