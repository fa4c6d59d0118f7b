using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// A trainable dense linear layer, y = x·Wᵀ (+ bias), for the <c>full</c> and <c>galore</c> methods and for layers a
/// method does not target. Its weight gradient goes to <see cref="UpdateSink"/> as soon as it is computed, when set.
/// </summary>
public sealed class TrainableDenseLinear : nn.Module<Tensor, Tensor>, IDenseLinearHost, LoQT.Models.Llama.IDenseWeightLinear
{
    private readonly BackwardResultRelease release;
    private readonly ScalarType dtype;
    private readonly Parameter weight;
    private readonly Parameter? bias;

    /// <summary>Builds the layer from a weight (copied).</summary>
    /// <param name="name">The layer's name.</param>
    /// <param name="weight">W, [out, in].</param>
    /// <param name="bias">Optional bias, [out].</param>
    /// <param name="dtype">The dtype of the parameters and of the computation.</param>
    /// <exception cref="ArgumentException">The weight is not 2-D or the bias does not fit.</exception>
    public TrainableDenseLinear(string name, Tensor weight, Tensor? bias, ScalarType dtype = ScalarType.Float32)
        : this(name, weight, bias, dtype, new BackwardResultRelease())
    {
    }

    internal TrainableDenseLinear(string name, Tensor weight, Tensor? bias, ScalarType dtype, BackwardResultRelease release)
        : base(name)
    {
        ArgumentNullException.ThrowIfNull(weight);
        LinearShapes.Validate(name, weight, bias);
        this.release = release;
        this.dtype = dtype;
        using var noGrad = no_grad();
        this.weight = new Parameter(weight.detach().to(dtype, copy: true).contiguous().DetachFromDisposeScope());
        register_parameter("weight", this.weight);
        if (bias is not null)
        {
            this.bias = new Parameter(bias.detach().to(dtype, copy: true).DetachFromDisposeScope());
            register_parameter("bias", this.bias);
        }
    }

    /// <summary>Columns of W.</summary>
    public long InFeatures => weight.shape[1];

    /// <summary>Rows of W.</summary>
    public long OutFeatures => weight.shape[0];

    /// <summary>W, [out, in] (trainable).</summary>
    public Parameter Weight => weight;

    /// <summary>The trainable bias, or null.</summary>
    public Parameter? Bias => bias;

    /// <inheritdoc/>
    public bool HasBias => bias is not null;

    /// <summary>Where gradients are reported for per-layer updates; null for plain autograd.</summary>
    public IParameterUpdateSink? UpdateSink { get; set; }

    BackwardResultRelease IDenseLinearHost.Release => release;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() < 1 || input.shape[^1] != InFeatures)
        {
            throw new ArgumentException($"Layer '{GetName()}' expects inputs with {InFeatures} features in the last dimension; got shape [{string.Join(", ", input.shape)}].", nameof(input));
        }

        using var scope = NewDisposeScope();
        var x = input.dtype == dtype ? input : input.to(dtype);
        var y = DenseLinearFunction.apply(x, weight, this);
        if (bias is not null)
        {
            y = y.add(UpdateSink is not null && bias.requires_grad ? GradientTap.Apply(bias, UpdateSink) : bias);
        }

        return y.MoveToOuterDisposeScope();
    }

    Tensor? IDenseLinearHost.RouteWeightGradient(Tensor gradient) => RouteWeightGradient(gradient);

    /// <inheritdoc/>
    public Tensor? RouteWeightGradient(Tensor gradient) =>
        UpdateSink?.TryConsumeGradient(weight, gradient) == true ? null : gradient;
}
