using LoQT.Quantization;
using TorchSharp;

namespace LoQT.Models.Llama;

/// <summary>
/// Makes the linear layers of a model: plain (<see cref="DenseLinearFactory"/>), frozen NF4
/// (<see cref="Nf4LinearFactory"/>), or any other layer (LoQT adapters) that maps <c>[…, in]</c> to <c>[…, out]</c>
/// as <c>y = x·Wᵀ + b</c> does. The model builds, or loads, one layer at a time and calls the factory for each.
/// </summary>
/// <remarks>
/// The returned module becomes a child of the model under the layer's name, so its parameters are named
/// <c>{spec.Name}.{parameter}</c> (name the weight <c>weight</c> to match Hugging Face). It must live on
/// <see cref="LinearLayerSpec.Device"/> and return <see cref="LinearLayerSpec.ComputeDType"/> outputs.
/// </remarks>
public interface ILinearFactory
{
    /// <summary>A layer from a full-precision weight.</summary>
    /// <param name="spec">The layer's name, size, compute dtype and device.</param>
    /// <param name="weight">
    /// <c>[out, in]</c> on the CPU, floating point in the dtype it was stored in (F32, F16 or BF16; F32 for random
    /// initialisation). The factory may read it, convert it or keep its storage; the caller disposes this handle as soon
    /// as <c>Create</c> returns, so keep a tensor of your own (e.g. the result of <c>to(…)</c>) if you need it later.
    /// </param>
    /// <param name="bias"><c>[out]</c> on the CPU under the same rules, or <c>null</c>.</param>
    torch.nn.Module<torch.Tensor, torch.Tensor> Create(LinearLayerSpec spec, torch.Tensor weight, torch.Tensor? bias);

    /// <summary>
    /// A layer from a weight that is already NF4 (a bitsandbytes-format checkpoint). The factory owns
    /// <paramref name="weight"/> from now on: it keeps it or disposes it.
    /// </summary>
    /// <param name="spec">The layer's name, size, compute dtype and device.</param>
    /// <param name="weight">The NF4 weight, shape <c>[out, in]</c>, on the CPU.</param>
    /// <param name="bias"><c>[out]</c> on the CPU (disposed by the caller after the call), or <c>null</c>.</param>
    torch.nn.Module<torch.Tensor, torch.Tensor> CreateQuantized(LinearLayerSpec spec, Nf4Tensor weight, torch.Tensor? bias);
}
