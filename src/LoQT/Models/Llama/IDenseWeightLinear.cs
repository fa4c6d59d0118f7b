using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// A linear layer y = x·Wᵀ with a dense weight that other code may multiply with directly, as
/// <see cref="LinearCrossEntropy"/> does for the output head; the gradient it computes for W is handed back to the
/// layer, which sends it where its own backward would (autograd, or a per-layer optimizer).
/// </summary>
public interface IDenseWeightLinear
{
    /// <summary>W, <c>[out, in]</c>: the layer's parameter itself (trainable or frozen).</summary>
    Parameter Weight { get; }

    /// <summary>Whether the layer adds a bias (a fused loss then falls back to the layer's own forward).</summary>
    bool HasBias { get; }

    /// <summary>
    /// Takes a gradient of <see cref="Weight"/> computed outside the layer's forward; returns what autograd should
    /// accumulate into <c>Weight.grad</c>, or null when the layer consumed it (per-layer updates).
    /// </summary>
    /// <param name="gradient">∂loss/∂W, <c>[out, in]</c>, in W's dtype.</param>
    Tensor? RouteWeightGradient(Tensor gradient);
}
