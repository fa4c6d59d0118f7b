using LoQT.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// y = x·Wᵀ for a trainable dense W whose gradient goes to the host's update sink as soon as it is computed
/// (per-layer updates), or to autograd as usual.
/// </summary>
/// <remarks>Arguments: x, W (tensors), then the <see cref="IDenseLinearHost"/>.</remarks>
internal sealed class DenseLinearFunction : autograd.SingleTensorFunction<DenseLinearFunction>
{
    private const string HostKey = "host";
    private const string NeedsKey = "needs";

    /// <inheritdoc/>
    public override string Name => nameof(DenseLinearFunction);

    /// <inheritdoc/>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var w = (Tensor)vars[1];
        ctx.save_for_backward([x, w]);
        ctx.save_data(HostKey, vars[2]);
        ctx.save_data(NeedsKey, new[] { x.requires_grad, w.requires_grad });
        return Gemm.Linear(x, w);
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var host = (IDenseLinearHost)ctx.get_data(HostKey);
        var needs = (bool[])ctx.get_data(NeedsKey);
        host.Release.ReleasePending();
        Tensor? gradX = null, gradW = null;
        using (var scope = NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var (x, w) = (saved[0], saved[1]);
            var g2 = grad_output.reshape(-1, grad_output.shape[^1]);
            if (needs[0])
            {
                gradX = Gemm.MatMul(g2, w).reshape(x.shape).DetachFromDisposeScope();
            }

            if (needs[1])
            {
                var x2 = x.reshape(-1, x.shape[^1]);
                gradW = host.RouteWeightGradient(Gemm.MatMul(g2.t(), x2))?.DetachFromDisposeScope();
            }
        }

        grad_output.Dispose();
        return [host.Release.Hold(gradX)!, host.Release.Hold(gradW)!, null!];
    }
}
