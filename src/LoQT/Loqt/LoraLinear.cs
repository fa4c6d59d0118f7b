using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// The LoRA baseline: frozen W (NF4 when <see cref="LoqtOptions.QuantizeWeight"/>, else dense), trainable A (r × in,
/// Kaiming-uniform like PEFT: U(−1/√in, 1/√in)) and B (out × r, zero), y = x·Wᵀ + α·(x·Aᵀ)·Bᵀ (+ bias); never merged.
/// </summary>
/// <remarks>α multiplies the low-rank path directly, as the LoQT reference does (not α/r).</remarks>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>, ILowRankLinearHost
{
    private readonly LoqtOptions options;
    private readonly BackwardResultRelease release;
    private readonly FrozenMatrix weight;
    private readonly Parameter loraA;
    private readonly Parameter loraB;
    private readonly Parameter? bias;

    /// <summary>Builds the layer from a full-precision weight.</summary>
    /// <param name="name">The layer's name (for errors and the seed of A).</param>
    /// <param name="weight">W, [out, in] (copied or quantized; not kept).</param>
    /// <param name="bias">Optional bias, [out] (copied into a trainable parameter).</param>
    /// <param name="options">Rank, α, whether W is quantized, compute dtype, seed.</param>
    /// <exception cref="ArgumentException">The weight is not 2-D, the bias does not fit, or an option is out of range.</exception>
    public LoraLinear(string name, Tensor weight, Tensor? bias, LoqtOptions options)
        : this(name, weight, bias, options, new BackwardResultRelease())
    {
    }

    internal LoraLinear(string name, Tensor weight, Tensor? bias, LoqtOptions options, BackwardResultRelease release)
        : base(name)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(options);
        LinearShapes.Validate(name, weight, bias);
        OutFeatures = weight.shape[0];
        InFeatures = weight.shape[1];
        options.ValidateFor(InFeatures, OutFeatures, name);
        this.options = options;
        this.release = release;

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var dtype = options.ComputeDType;
        this.weight = FrozenMatrix.Create(weight, options.QuantizeWeight, options.BlockSize, options.DoubleQuantization, dtype);
        using var generator = new Generator((ulong)StableSeed.Derive(options.Seed, name, 0), weight.device);
        var bound = 1.0 / Math.Sqrt(InFeatures);
        var a = rand([options.Rank, InFeatures], ScalarType.Float32, weight.device, generator: generator).mul_(2 * bound).sub_(bound);
        loraA = new Parameter(a.to(dtype).DetachFromDisposeScope());
        loraB = new Parameter(zeros([OutFeatures, options.Rank], dtype, weight.device).DetachFromDisposeScope());
        register_parameter("lora_A", loraA);
        register_parameter("lora_B", loraB);
        if (bias is not null)
        {
            this.bias = new Parameter(bias.detach().to(dtype, copy: true).DetachFromDisposeScope());
            register_parameter("bias", this.bias);
        }
    }

    /// <summary>Columns of W.</summary>
    public long InFeatures { get; }

    /// <summary>Rows of W.</summary>
    public long OutFeatures { get; }

    /// <summary>α.</summary>
    public double Alpha => options.Alpha;

    /// <summary>W as stored.</summary>
    public FrozenMatrix Weight => weight;

    /// <summary>A, r × in (trainable).</summary>
    public Parameter LoraA => loraA;

    /// <summary>B, out × r (trainable, zero at the start).</summary>
    public Parameter LoraB => loraB;

    /// <summary>The trainable bias, or null.</summary>
    public Parameter? Bias => bias;

    /// <summary>Where gradients are reported for per-layer updates; null for plain autograd.</summary>
    public IParameterUpdateSink? UpdateSink { get; set; }

    /// <summary>Where the time of dequantizing W goes; null times nothing.</summary>
    public ITimingSink? TimingSink { get; set; }

    BackwardResultRelease ILowRankLinearHost.Release => release;

    bool ILowRankLinearHost.CollectsFullGradient => false;

    int ILowRankLinearHost.RebuiltFactor => -1;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() < 1 || input.shape[^1] != InFeatures)
        {
            throw new ArgumentException($"Layer '{GetName()}' expects inputs with {InFeatures} features in the last dimension; got shape [{string.Join(", ", input.shape)}].", nameof(input));
        }

        using var scope = NewDisposeScope();
        var x = input.dtype == options.ComputeDType ? input : input.to(options.ComputeDType);
        var y = LowRankLinearFunction.apply(x, loraA, loraB, this);
        if (bias is not null)
        {
            y = y.add(UpdateSink is not null && bias.requires_grad ? GradientTap.Apply(bias, UpdateSink) : bias);
        }

        return y.MoveToOuterDisposeScope();
    }

    /// <summary>deq(W) + α·B·A, [out, in], as a new tensor (<see cref="AdapterMerge.LoraMerged"/>).</summary>
    /// <param name="dtype">The dtype of the result.</param>
    public Tensor MergedWeight(ScalarType dtype = ScalarType.Float32) => AdapterMerge.LoraMerged(weight, loraA, loraB, Alpha, dtype);

    Tensor ILowRankLinearHost.BaseWeight(ScalarType dtype)
    {
        using var clock = StageClock.Measure(weight.IsQuantized ? TimingSink : null, TimedStage.Dequantize);
        return weight.Values(dtype);
    }

    Tensor ILowRankLinearHost.RebuildFactor(ScalarType dtype) =>
        throw new InvalidOperationException("LoRA saves both of its factors.");

    void ILowRankLinearHost.AccumulateFullGradient(Tensor gradOutput, Tensor input) =>
        throw new InvalidOperationException("LoRA layers never collect a full gradient.");

    Tensor? ILowRankLinearHost.RouteFactorGradient(int index, Tensor gradient)
    {
        var parameter = index == 0 ? loraA : loraB;
        return UpdateSink?.TryConsumeGradient(parameter, gradient) == true ? null : gradient;
    }

    void ILowRankLinearHost.AfterBackward()
    {
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            weight.Dispose();
        }

        base.Dispose(disposing);
    }
}
