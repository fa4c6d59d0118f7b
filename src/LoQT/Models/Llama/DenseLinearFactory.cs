using LoQT.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>Makes <see cref="DenseLinear"/> layers: the weight converted to the compute dtype (NF4 weights are dequantized).</summary>
/// <param name="trainable">Whether weights and biases require gradients (full fine-tuning, or the golden gradient tests).</param>
public sealed class DenseLinearFactory(bool trainable = false) : ILinearFactory
{
    /// <summary>Whether the layers' parameters require gradients.</summary>
    public bool Trainable { get; } = trainable;

    /// <inheritdoc/>
    public nn.Module<Tensor, Tensor> Create(LinearLayerSpec spec, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(weight);
        return new DenseLinear(spec.Name, Convert(weight, spec), bias is null ? null : Convert(bias, spec), Trainable);
    }

    /// <inheritdoc/>
    public nn.Module<Tensor, Tensor> CreateQuantized(LinearLayerSpec spec, Nf4Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(weight);
        using (weight)
        {
            using var dense = weight.Dequantize(ScalarType.Float32);
            return Create(spec, dense, bias);
        }
    }

    // A new handle (sharing storage when nothing changes), detached from any autograd history and dispose scope.
    private static Tensor Convert(Tensor tensor, LinearLayerSpec spec)
    {
        using var converted = tensor.to(spec.ComputeDType, spec.Device);
        return converted.detach().DetachFromDisposeScope();
    }
}
