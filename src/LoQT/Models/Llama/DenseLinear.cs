using LoQT.Native;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>A plain linear layer <c>y = x·Wᵀ + b</c> whose weight is a parameter in the compute dtype (trainable or frozen).</summary>
public sealed class DenseLinear : nn.Module<Tensor, Tensor>, IDenseWeightLinear
{
    private readonly Parameter _weight;
    private readonly Parameter? _bias;

    /// <summary>Wraps tensors that are already in the compute dtype and on the target device; they become the layer's parameters.</summary>
    /// <param name="name">The module name (its path in the model).</param>
    /// <param name="weight"><c>[out, in]</c>; taken over (this handle becomes invalid).</param>
    /// <param name="bias"><c>[out]</c> or <c>null</c>; taken over.</param>
    /// <param name="trainable">Whether the parameters require gradients.</param>
    public DenseLinear(string name, Tensor weight, Tensor? bias, bool trainable)
        : base(name)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.ndim != 2)
        {
            throw new ArgumentException($"{name}: a linear weight must be 2-D [out, in], got [{string.Join(", ", weight.shape)}]", nameof(weight));
        }

        _weight = new Parameter(weight, trainable);
        register_parameter("weight", _weight);
        if (bias is not null)
        {
            _bias = new Parameter(bias, trainable);
            register_parameter("bias", _bias);
        }
    }

    /// <summary>The weight, <c>[out, in]</c>.</summary>
    public Parameter Weight => _weight;

    /// <summary>The bias, <c>[out]</c>, or <c>null</c>.</summary>
    public Parameter? Bias => _bias;

    /// <inheritdoc/>
    public bool HasBias => _bias is not null;

    /// <inheritdoc/>
    public Tensor? RouteWeightGradient(Tensor gradient) => gradient;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => Gemm.Linear(input, _weight, _bias);
}
