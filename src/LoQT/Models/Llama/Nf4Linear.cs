using LoQT.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// A linear layer with a frozen NF4 weight, dequantized to the compute dtype on every forward (and again in backward
/// for the input gradient). The weight is not a parameter: it receives no gradient and is not in <c>parameters()</c>.
/// </summary>
/// <remarks>The NF4 weight lives on the device it was given on; this layer does not follow <c>Module.to(device)</c>.</remarks>
public sealed class Nf4Linear : nn.Module<Tensor, Tensor>
{
    private readonly Parameter? _bias;
    private bool _disposed;

    /// <summary>Wraps an NF4 weight (owned by the layer from now on) and an optional bias.</summary>
    /// <param name="name">The module name (its path in the model).</param>
    /// <param name="weight">The NF4 weight, <c>[out, in]</c>, on the device the layer computes on.</param>
    /// <param name="bias"><c>[out]</c> in the compute dtype on that device, or <c>null</c>; taken over (this handle becomes invalid).</param>
    /// <param name="computeDType">The dtype the weight is dequantized to and the output has.</param>
    /// <param name="trainableBias">Whether the bias requires gradients.</param>
    public Nf4Linear(string name, Nf4Tensor weight, Tensor? bias, ScalarType computeDType, bool trainableBias = false)
        : base(name)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Shape.Length != 2)
        {
            throw new ArgumentException($"{name}: a linear weight must be 2-D [out, in], got [{string.Join(", ", weight.Shape)}]", nameof(weight));
        }

        Weight = weight;
        ComputeDType = computeDType;
        if (bias is not null)
        {
            _bias = new Parameter(bias, trainableBias);
            register_parameter("bias", _bias);
        }
    }

    /// <summary>The NF4 weight, <c>[out, in]</c> (owned by this layer).</summary>
    public Nf4Tensor Weight { get; }

    /// <summary>The bias, <c>[out]</c>, or <c>null</c>.</summary>
    public Parameter? Bias => _bias;

    /// <summary>The dtype the weight is dequantized to.</summary>
    public ScalarType ComputeDType { get; }

    /// <summary>Input width.</summary>
    public long InFeatures => Weight.Shape[1];

    /// <summary>Output width.</summary>
    public long OutFeatures => Weight.Shape[0];

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Nf4LinearFunction.Apply(input, Weight, _bias, ComputeDType);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            Weight.Dispose();
        }

        base.Dispose(disposing);
    }
}
