using LoQT.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>Makes <see cref="Nf4Linear"/> layers: each weight quantized to NF4 as it arrives (bitsandbytes layout).</summary>
/// <param name="blockSize">Elements per absmax block (bitsandbytes' default 64).</param>
/// <param name="doubleQuant">Also 8-bit quantize the absmax values (bitsandbytes' <c>bnb_4bit_use_double_quant</c>).</param>
/// <param name="trainableBias">Whether biases (when the model has them) require gradients.</param>
public sealed class Nf4LinearFactory(int blockSize = Nf4BlockSizes.Default, bool doubleQuant = false, bool trainableBias = false) : ILinearFactory
{
    /// <summary>Elements per absmax block.</summary>
    public int BlockSize { get; } = blockSize;

    /// <summary>Whether absmax values are double-quantized.</summary>
    public bool DoubleQuant { get; } = doubleQuant;

    /// <summary>Whether biases require gradients.</summary>
    public bool TrainableBias { get; } = trainableBias;

    /// <inheritdoc/>
    public nn.Module<Tensor, Tensor> Create(LinearLayerSpec spec, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(weight);
        Nf4Tensor quantized;
        if (spec.Device.type == DeviceType.CPU)
        {
            quantized = Nf4Tensor.Quantize(weight, BlockSize, DoubleQuant);
        }
        else
        {
            // Quantize where the layer lives: the accelerator is faster, and only the 4-bit result stays there.
            using var onDevice = weight.to(spec.Device);
            quantized = Nf4Tensor.Quantize(onDevice, BlockSize, DoubleQuant);
        }

        return CreateQuantized(spec, quantized, bias);
    }

    /// <inheritdoc/>
    public nn.Module<Tensor, Tensor> CreateQuantized(LinearLayerSpec spec, Nf4Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(weight);
        var onDevice = weight;
        try
        {
            if (weight.Device.type != spec.Device.type || weight.Device.index != spec.Device.index)
            {
                onDevice = weight.To(spec.Device);
                weight.Dispose();
            }

            Tensor? deviceBias = null;
            if (bias is not null)
            {
                using var converted = bias.to(spec.ComputeDType, spec.Device);
                deviceBias = converted.detach().DetachFromDisposeScope();
            }

            return new Nf4Linear(spec.Name, onDevice, deviceBias, spec.ComputeDType, TrainableBias);
        }
        catch
        {
            onDevice.Dispose();
            weight.Dispose();
            throw;
        }
    }
}
