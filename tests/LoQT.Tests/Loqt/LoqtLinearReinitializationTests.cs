using LoQT.Loqt;
using LoQT.Quantization;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>Merges and re-initializations of a <see cref="LoqtLinear"/> on real tiny-llama weights.</summary>
public sealed class LoqtLinearReinitializationTests
{
    private const int Rank = 8;

    public static TheoryData<string> Layers => [TinyLlamaTensors.UpProj, TinyLlamaTensors.DownProj];

    [Theory]
    [MemberData(nameof(Layers))]
    public void Merge_KeepsTheLayersFunctionUpToTheNf4ErrorOfTheMergedWeight(string layerName)
    {
        using var scope = NewDisposeScope();
        using var layer = LoqtLinearAutogradTests.ReinitializedLayer(layerName, new LoqtOptions { Rank = Rank });
        var x = randn([6, layer.InFeatures], generator: new Generator(5));
        var before = MergedAndOutput(layer, x);
        var lowRank = layer.LowRankProduct();

        layer.Merge();
        var after = MergedAndOutput(layer, x);

        // NF4 rounds each element to the nearest code times its block's absmax, so |error| ≤ h·absmax with h the
        // largest half-gap between neighbouring codes (0.152, between −1 and −0.696); over the matrix
        // ‖ΔW‖_F ≤ h·√(Σ_blocks n_b·absmax_b²), computed here from the merged weight itself. The outputs then differ by
        // at most ‖x‖_F·‖ΔW‖_F (‖x·ΔWᵀ‖_F ≤ ‖x‖_F·‖ΔW‖_2 ≤ ‖x‖_F·‖ΔW‖_F), plus fp32 noise (1e-4 relative).
        var weightChange = Norm(after.Merged - before.Merged);
        Assert.True(weightChange <= Nf4ErrorBound(before.Merged), $"‖ΔW‖ = {weightChange}, bound {Nf4ErrorBound(before.Merged)}");
        Assert.True(Norm(after.Output - before.Output) <= Norm(x) * weightChange * (1 + 1e-4));
        Assert.Equal(0f, layer.Adapter.abs().max().item<float>());

        // B's part of the function survived the merge: dropping it instead would have changed W by far more.
        Assert.True(Norm(lowRank) > 3 * weightChange, $"α·B·P = {Norm(lowRank)} vs merge error {weightChange}");
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void Reinitialization_KeepsTheOutputUpToTheQuantizationErrorItCompensated(string layerName)
    {
        using var scope = NewDisposeScope();
        using var layer = LoqtLinearAutogradTests.ReinitializedLayer(layerName, new LoqtOptions { Rank = Rank });
        var x = randn([6, layer.InFeatures], generator: new Generator(5));
        var before = MergedAndOutput(layer, x);

        layer.Reinitialize(randn([layer.OutFeatures, layer.InFeatures], generator: new Generator(9)));
        var after = MergedAndOutput(layer, x);

        // The new (Q, B) is error compensation's best pair, whose first candidate already beats plain NF4 of the
        // merged weight (it subtracts the residual's projection onto P); so ‖ΔW‖_F ≤ ‖W − deq(NF4(W))‖_F.
        using var plain = Nf4Tensor.Quantize(before.Merged);
        var plainError = Norm(before.Merged - plain.Dequantize(ScalarType.Float32));
        var weightChange = Norm(after.Merged - before.Merged);
        Assert.True(weightChange > 0 && weightChange <= plainError, $"‖ΔW‖ = {weightChange}, NF4 error {plainError}");
        Assert.True(Norm(after.Output - before.Output) <= Norm(x) * weightChange * (1 + 1e-4));
        Assert.NotEqual(0f, layer.Adapter.abs().max().item<float>()); // B holds the compensation
        Assert.True(layer.Projection.IsQuantized);
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void UnquantizedReinitialization_KeepsTheOutputAndGivesOrthonormalP(string layerName)
    {
        using var scope = NewDisposeScope();
        var options = new LoqtOptions { Rank = Rank, QuantizeWeight = false, QuantizeProjection = false };
        using var layer = LoqtLinearAutogradTests.ReinitializedLayer(layerName, options);
        var x = randn([6, layer.InFeatures], generator: new Generator(5));
        var before = MergedAndOutput(layer, x);

        layer.Reinitialize(randn([layer.OutFeatures, layer.InFeatures], generator: new Generator(9)));
        var after = MergedAndOutput(layer, x);

        // Nothing is quantized: W absorbs α·B·P in fp32 and B restarts at zero; only rounding remains (relative 1e-6).
        Assert.True(Norm(after.Output - before.Output) <= 1e-6 * Norm(before.Output));
        Assert.Equal(0f, layer.Adapter.abs().max().item<float>());
        var p = layer.Projection.Values(ScalarType.Float32);
        var gram = layer.Side == ProjectionSide.Left ? p.matmul(p.t()) : p.t().matmul(p);
        Assert.True((gram - eye(Rank)).abs().max().item<float>() < 1e-5, "P's rows (left) or columns (right) are not orthonormal");
    }

    [Fact]
    public void MergedWeight_LeavesADenseLayerUnchanged()
    {
        // Regression: MergedWeight added α·B·P in place into a dense fp32 W (whose Values share its storage), so every
        // call moved the layer's frozen weight.
        using var scope = NewDisposeScope();
        var options = new LoqtOptions { Rank = Rank, QuantizeWeight = false, QuantizeProjection = false };
        using var layer = LoqtLinearAutogradTests.ReinitializedLayer(TinyLlamaTensors.UpProj, options);
        var x = randn([6, layer.InFeatures], generator: new Generator(5));
        var before = MergedAndOutput(layer, x);

        layer.MergedWeight().Dispose();
        var after = MergedAndOutput(layer, x);

        Assert.Equal(0f, (after.Merged - before.Merged).abs().max().item<float>());
        Assert.Equal(0f, (after.Output - before.Output).abs().max().item<float>());
    }

    [Fact]
    public void ReinitializationStep_RestartsBsOptimizerStateAndAppliesNoUpdate()
    {
        using var scope = NewDisposeScope();
        var w = TinyLlamaTensors.Weight(TinyLlamaTensors.UpProj);
        using var layer = new LoqtLinear("up", w, null, new LoqtOptions { Rank = Rank });
        const double lr = 1e-3;
        using var optimizer = new AdamW([new TrainableParameter("up.adapter", layer.Adapter)], new AdamWOptions { LearningRate = lr });
        layer.UpdateSink = optimizer;
        var generator = new Generator(21);
        void Backward() => (layer.call(randn([8, 64], generator: generator)) * randn([8, 172], generator: generator)).sum().backward();

        // A first cycle: re-initialize (step 0), then two ordinary updates.
        layer.ArmReinitialization();
        Backward();
        optimizer.Step();
        Backward();
        optimizer.Step();
        Backward();
        optimizer.Step();
        Assert.Equal(2, optimizer.ParameterStepCount(layer.Adapter));

        // The next update step: backward re-initializes the layer, which resets B's state; the step changes nothing.
        layer.ArmReinitialization();
        Backward();
        Assert.Equal(2, layer.ReinitializationCount);
        Assert.Equal(0, optimizer.ParameterStepCount(layer.Adapter));
        var compensated = layer.Adapter.detach().clone();
        optimizer.Step();
        Assert.Equal(0f, (layer.Adapter - compensated).abs().max().item<float>());
        Assert.Equal(0, optimizer.ParameterStepCount(layer.Adapter));

        // The update after it is a fresh Adam's first step: m̂/√v̂ = g/|g|, so every element moves by lr (up to ε).
        Backward();
        optimizer.Step();
        Assert.Equal(1, optimizer.ParameterStepCount(layer.Adapter));
        var moved = (layer.Adapter - compensated).abs();
        Assert.True(moved.max().item<float>() <= lr * (1 + 1e-4));
        Assert.True(moved.min().item<float>() >= lr * 0.99, $"smallest move {moved.min().item<float>()}: the moments did not restart");
    }

    private static (Tensor Merged, Tensor Output) MergedAndOutput(LoqtLinear layer, Tensor x)
    {
        using var noGrad = no_grad();
        return (layer.MergedWeight(), layer.call(x));
    }

    private static double Norm(Tensor t) => t.to(ScalarType.Float64).norm().item<double>();

    private static double Nf4ErrorBound(Tensor w)
    {
        var codes = Nf4Codebook.ToArray();
        var halfGap = codes.Zip(codes.Skip(1)).Max(p => (p.Second - p.First) / 2.0);
        var flat = w.reshape(-1).to(ScalarType.Float64);
        double sum = 0;
        for (long start = 0; start < flat.shape[0]; start += 64)
        {
            var block = flat.narrow(0, start, Math.Min(64, flat.shape[0] - start));
            var absmax = block.abs().max().item<double>();
            sum += block.shape[0] * absmax * absmax;
        }

        return halfGap * Math.Sqrt(sum) * (1 + 1e-6);
    }
}
