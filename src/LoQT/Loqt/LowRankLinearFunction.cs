using LoQT.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// y = x·Wᵀ + α·(x·Lᵀ)·Rᵀ with W frozen (dequantized on the fly from the host, never saved) and L (r × in), R (out × r)
/// the low-rank factors. Backward computes the input gradient through W and the low-rank path and the gradients of
/// whichever factors require them; it never builds a full-size weight gradient unless the host is collecting one.
/// </summary>
/// <remarks>
/// Arguments: x, L, R (tensors), then the <see cref="ILowRankLinearHost"/>. A factor the host can rebuild (a dequantized
/// P, see <see cref="ILowRankLinearHost.RebuiltFactor"/>) is not saved for backward but asked for again there.
/// </remarks>
internal sealed class LowRankLinearFunction : autograd.SingleTensorFunction<LowRankLinearFunction>
{
    private const string HostKey = "host";
    private const string NeedsKey = "needs";
    private const string RebuiltKey = "rebuilt";

    /// <inheritdoc/>
    public override string Name => nameof(LowRankLinearFunction);

    /// <inheritdoc/>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var left = (Tensor)vars[1];
        var right = (Tensor)vars[2];
        var host = (ILowRankLinearHost)vars[3];
        var rebuilt = host.RebuiltFactor;
        ctx.save_for_backward(rebuilt switch { 0 => [x, right], 1 => [x, left], _ => [x, left, right] });
        ctx.save_data(HostKey, host);
        ctx.save_data(NeedsKey, new[] { x.requires_grad, left.requires_grad, right.requires_grad });
        ctx.save_data(RebuiltKey, rebuilt);

        using var scope = NewDisposeScope();
        var inFeatures = x.shape[^1];
        var x2 = x.reshape(-1, inFeatures);
        var w = host.BaseWeight(Gemm.OperandDtype(x.dtype, x.device));
        var y = Gemm.Linear(x2, w);
        var lowRank = Gemm.MatMul(Gemm.MatMul(x2, left.t()), right.t());
        y.add_(lowRank, host.Alpha);
        long[] shape = [.. x.shape[..^1], w.shape[0]];
        return y.reshape(shape).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var host = (ILowRankLinearHost)ctx.get_data(HostKey);
        var needs = (bool[])ctx.get_data(NeedsKey);
        var rebuilt = (int)ctx.get_data(RebuiltKey);
        host.Release.ReleasePending();
        Tensor? gradX = null, gradLeft = null, gradRight = null;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var x = saved[0];
            var (left, right) = rebuilt switch
            {
                0 => (host.RebuildFactor(x.dtype), saved[1]),
                1 => (saved[1], host.RebuildFactor(x.dtype)),
                _ => (saved[1], saved[2]),
            };
            var inFeatures = x.shape[^1];
            var outFeatures = grad_output.shape[^1];
            var g2 = grad_output.reshape(-1, outFeatures);
            var x2 = x.reshape(-1, inFeatures);
            var alpha = host.Alpha;
            var collecting = host.CollectsFullGradient;

            // g·R is shared by the input gradient and the gradient of L.
            var gRight = Gemm.MatMul(g2, right);
            if (needs[0])
            {
                var w = host.BaseWeight(Gemm.OperandDtype(g2.dtype, g2.device));
                var gx = Gemm.MatMul(g2, w);
                gx.add_(Gemm.MatMul(gRight, left), alpha);
                gradX = gx.reshape(x.shape);
            }

            if (collecting)
            {
                // A re-initialization step applies no update to the factors, so their gradients are not needed.
                host.AccumulateFullGradient(g2, x2);
            }
            else
            {
                // Both factor gradients are computed before either is handed on: a per-layer sink updates the factor in place.
                var leftGrad = needs[1] ? Gemm.MatMul(gRight.t(), x2).mul_(alpha) : null;
                var rightGrad = needs[2] ? Gemm.MatMul(g2.t(), Gemm.MatMul(x2, left.t())).mul_(alpha) : null;
                gradLeft = leftGrad is null ? null : host.RouteFactorGradient(0, leftGrad);
                gradRight = rightGrad is null ? null : host.RouteFactorGradient(1, rightGrad);
            }

            gradX?.DetachFromDisposeScope();
            gradLeft?.DetachFromDisposeScope();
            gradRight?.DetachFromDisposeScope();
        }

        grad_output.Dispose();
        host.AfterBackward();
        return [host.Release.Hold(gradX)!, host.Release.Hold(gradLeft)!, host.Release.Hold(gradRight)!, null!];
    }
}
