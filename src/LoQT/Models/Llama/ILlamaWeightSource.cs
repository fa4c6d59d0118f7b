using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>Where a model's weights come from while it is built one module at a time: a checkpoint, or random initialisation.</summary>
internal interface ILlamaWeightSource
{
    /// <summary>A norm weight (CPU, any float dtype); the caller disposes it.</summary>
    Tensor Norm(string name, long size);

    /// <summary>The embedding matrix <c>[vocab, hidden]</c> (CPU, any float dtype); the caller disposes it.</summary>
    Tensor Embedding(string name, long[] shape, long? paddingIndex);

    /// <summary>A linear layer made by <paramref name="factory"/> from this source's weight (and bias) for <paramref name="spec"/>.</summary>
    nn.Module<Tensor, Tensor> Linear(LinearLayerSpec spec, ILinearFactory factory);

    /// <summary>The tensors the model will ask for, for progress.</summary>
    int TensorCount { get; }
}
