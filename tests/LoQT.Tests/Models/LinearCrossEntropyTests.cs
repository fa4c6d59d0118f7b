using LoQT.Models.Llama;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Tests.Models;

/// <summary>
/// The fused head + cross-entropy against PyTorch's own linear and cross_entropy, over several row chunks (300 rows at
/// vocabulary 32000 are three chunks, the last one short) with ignored targets.
/// </summary>
public sealed class LinearCrossEntropyTests
{
    private const int Rows = 300;
    private const int Vocabulary = 32000;
    private const int Hidden = 16;

    [Theory]
    [InlineData(nn.Reduction.Mean)]
    [InlineData(nn.Reduction.Sum)]
    public void LossAndGradients_EqualLinearThenCrossEntropy(nn.Reduction reduction)
    {
        using var scope = NewDisposeScope();
        var (h, w, targets) = Problem(ScalarType.Float32);
        Assert.True(LinearCrossEntropy.ChunkRows(Vocabulary) < Rows);

        var (loss, gradH, gradW) = Fused(h, w, targets, reduction);
        var (expectedLoss, expectedH, expectedW) = Unfused(h, w, targets, reduction);

        // fp32 with a different summation order (chunks, fp64 total): relative 1e-6 on the loss, 1e-5 on gradients.
        Assert.Equal(expectedLoss, loss, Math.Abs(expectedLoss) * 1e-6);
        Assert.True(RelativeError(gradH, expectedH) < 1e-5, $"∂h off by {RelativeError(gradH, expectedH):E2}");
        Assert.True(RelativeError(gradW, expectedW) < 1e-5, $"∂W off by {RelativeError(gradW, expectedW):E2}");
    }

    [Fact]
    public void Bf16OnTheCpu_ComputesInFp32()
    {
        using var scope = NewDisposeScope();
        var (h, w, targets) = Problem(ScalarType.BFloat16);

        var (loss, gradH, gradW) = Fused(h, w, targets, nn.Reduction.Mean);
        var (expectedLoss, expectedH, expectedW) = Unfused(h.to(ScalarType.Float32), w.to(ScalarType.Float32), targets, nn.Reduction.Mean);

        // The same bf16 values multiplied in fp32 (see LinearCrossEntropy's remarks): fp32 agreement as above, up to
        // the final rounding of the gradients to bf16 (2^-9 relative).
        Assert.Equal(ScalarType.BFloat16, gradH.dtype);
        Assert.Equal(expectedLoss, loss, Math.Abs(expectedLoss) * 1e-6);
        Assert.True(RelativeError(gradH, expectedH) < 4e-3, $"∂h off by {RelativeError(gradH, expectedH):E2}");
        Assert.True(RelativeError(gradW, expectedW) < 4e-3, $"∂W off by {RelativeError(gradW, expectedW):E2}");

        // And close to transformers' bf16 path, whose logits are rounded to bf16 (2^-9 relative of |logit| ≲ 20).
        var (bf16Loss, _, _) = Unfused(h, w, targets, nn.Reduction.Mean);
        Assert.Equal(bf16Loss, loss, Math.Abs(bf16Loss) * 1e-2);
    }

    [Fact]
    public void WeightGradient_GoesToTheRouteWhenOneIsGiven()
    {
        using var scope = NewDisposeScope();
        var (h, w, targets) = Problem(ScalarType.Float32);
        var weight = new Parameter(w.clone());
        Tensor? routed = null;

        LinearCrossEntropy.Apply(h, weight, targets, routeWeightGradient: g =>
        {
            routed = g.clone();
            return null; // consumed, as a per-layer optimizer does
        }).backward();

        Assert.Null(weight.grad);
        var (_, _, expectedW) = Unfused(h, w, targets, nn.Reduction.Mean);
        Assert.True(RelativeError(routed!, expectedW) < 1e-5);
    }

    [Fact]
    public void ForwardAndBackward_LeaveNoTensorAlive()
    {
        // Regression: the gradients computed in forward were kept as saved variables whose managed handles were never
        // disposed, so every training step left a weight-sized tensor for the GC (RSS grew ~15 MiB per 9m step).
        var (h, w, targets) = Problem(ScalarType.Float32);
        var hr = h.requires_grad_(true);
        var wr = new Parameter(w);
        Step();
        hr.grad = null;
        wr.grad = null;
        var before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;

        Step();
        hr.grad = null;
        wr.grad = null;

        Assert.Equal(before, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        void Step()
        {
            using var scope = NewDisposeScope();
            LinearCrossEntropy.Apply(hr, wr, targets).backward();
        }
    }

    [Fact]
    public void AllTargetsIgnored_GiveNaNForTheMeanAndZeroForTheSum()
    {
        using var scope = NewDisposeScope();
        var (h, w, _) = Problem(ScalarType.Float32);
        var none = full(Rows, -100L);

        Assert.True(float.IsNaN(LinearCrossEntropy.Apply(h, w, none).item<float>()));
        Assert.Equal(0f, LinearCrossEntropy.Apply(h, w, none, nn.Reduction.Sum).item<float>());
    }

    private static (Tensor H, Tensor W, Tensor Targets) Problem(ScalarType dtype)
    {
        var generator = new TorchSharp.torch.Generator(17);
        var h = randn([Rows, Hidden], generator: generator).to(dtype);
        var w = randn([Vocabulary, Hidden], generator: generator).to(dtype);
        var targets = randint(0, Vocabulary, [Rows], generator: generator);
        targets[5] = tensor(-100L);
        targets[250] = tensor(-100L); // in the last chunk
        return (h, w, targets);
    }

    private static (double Loss, Tensor GradH, Tensor GradW) Fused(Tensor h, Tensor w, Tensor targets, nn.Reduction reduction)
    {
        var hr = h.detach().requires_grad_(true);
        var wr = w.detach().requires_grad_(true);
        var loss = LinearCrossEntropy.Apply(hr, wr, targets, reduction);
        loss.backward();
        return (loss.item<float>(), hr.grad!, wr.grad!);
    }

    private static (double Loss, Tensor GradH, Tensor GradW) Unfused(Tensor h, Tensor w, Tensor targets, nn.Reduction reduction)
    {
        var hr = h.detach().requires_grad_(true);
        var wr = w.detach().requires_grad_(true);
        var loss = nn.functional.cross_entropy(nn.functional.linear(hr, wr).to(ScalarType.Float32), targets, ignore_index: -100, reduction: reduction);
        loss.backward();
        return (loss.item<float>(), hr.grad!, wr.grad!);
    }

    private static double RelativeError(Tensor actual, Tensor expected)
    {
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        return (a - e).abs().max().item<double>() / e.abs().max().item<double>();
    }
}
