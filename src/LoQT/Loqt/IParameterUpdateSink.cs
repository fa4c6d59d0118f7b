using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// Hears from layers during backward: gradients of trainable parameters as soon as they are computed (for per-layer
/// optimizer updates) and re-initializations of adapters (so their optimizer state restarts). Optimizers implement it.
/// </summary>
public interface IParameterUpdateSink
{
    /// <summary>
    /// Offers the gradient of <paramref name="parameter"/> the moment backward has computed it.
    /// </summary>
    /// <param name="parameter">The trainable parameter.</param>
    /// <param name="gradient">Its gradient for this backward pass; valid only during the call (copy it to keep it).</param>
    /// <returns>
    /// True when the sink took it (stepped the parameter or kept it for a later micro-batch): autograd then does not
    /// accumulate it into <c>parameter.grad</c>. False: autograd accumulates it as usual.
    /// </returns>
    bool TryConsumeGradient(Parameter parameter, Tensor gradient);

    /// <summary>
    /// <paramref name="parameter"/> was re-initialized (a new subspace): its optimizer state must restart, and it must
    /// take no update at the current step.
    /// </summary>
    /// <param name="parameter">The re-initialized parameter.</param>
    void OnReinitialized(Parameter parameter);
}
