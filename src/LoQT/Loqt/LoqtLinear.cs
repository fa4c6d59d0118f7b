using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// A LoQT linear layer: frozen W (NF4, or dense), frozen projection P (NF4, or dense), trainable B, and
/// y = x·deq(W)ᵀ + α·(low-rank path) (+ bias), with P on the side the reference's <c>proj_type="std"</c> rule picks
/// (<see cref="ProjectionSides.For"/>).
/// </summary>
/// <remarks>
/// <para>
/// Backward computes the input gradient through deq(W) and the low-rank path, and the gradient of B; it never forms a
/// full-size weight gradient, except when the layer is armed (<see cref="ArmReinitialization"/>): then backward
/// accumulates this layer's full gradient G = Σ gᵀ·x (fp32) instead of B's, and after the last armed micro-batch
/// re-initializes the layer right there (<see cref="Reinitialize"/>) and frees G. So at an update step the extra
/// memory is one layer's G and its SVD workspace (per armed micro-batch count of 1; with gradient accumulation every
/// armed layer holds its G until its last micro-batch). The input gradient of that backward uses the old W, P and B.
/// </para>
/// <para>
/// The gradient is taken at the merged but unrequantized weight deq(W) + α·P-product(B): the layer's function as it
/// is, which is what the re-initialization merges. (The reference requantizes the merged weight first and takes the
/// gradient there.) Before the first re-initialization P is zero and B is zero: the layer is x·deq(W)ᵀ.
/// </para>
/// <para>The layer lives on the device of the weight it was built from; each layer should be applied once per forward.</para>
/// </remarks>
public sealed class LoqtLinear : nn.Module<Tensor, Tensor>, ILowRankLinearHost
{
    private readonly LoqtOptions options;
    private readonly BackwardResultRelease release;
    private readonly Parameter adapter;
    private readonly Parameter? bias;
    private FrozenMatrix weight;
    private FrozenMatrix projection;
    private Tensor? fullGradient;
    private int armedMicroBatchesLeft;

    /// <summary>Builds the layer from a full-precision weight; P and B start at zero.</summary>
    /// <param name="name">The layer's name (for errors and seeds), e.g. <c>model.layers.0.mlp.up_proj</c>.</param>
    /// <param name="weight">W, [out, in] (copied or quantized; not kept).</param>
    /// <param name="bias">Optional bias, [out] (copied into a trainable parameter).</param>
    /// <param name="options">Rank, α, quantization switches, compute dtype, ….</param>
    /// <exception cref="ArgumentException">The weight is not 2-D, the bias does not fit, or an option is out of range (named in the message).</exception>
    public LoqtLinear(string name, Tensor weight, Tensor? bias, LoqtOptions options)
        : this(name, weight, bias, options, new BackwardResultRelease())
    {
    }

    internal LoqtLinear(string name, Tensor weight, Tensor? bias, LoqtOptions options, BackwardResultRelease release)
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
        Side = ProjectionSides.For(InFeatures, OutFeatures);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var dtype = options.ComputeDType;
        this.weight = FrozenMatrix.Create(weight, options.QuantizeWeight, options.BlockSize, options.DoubleQuantization, dtype);
        using (var p = zeros(Side.ProjectionShape(InFeatures, OutFeatures, options.Rank), dtype, weight.device))
        {
            projection = FrozenMatrix.FromDense(p, dtype);
        }

        adapter = new Parameter(zeros(Side.AdapterShape(InFeatures, OutFeatures, options.Rank), dtype, weight.device).DetachFromDisposeScope());
        register_parameter("adapter", adapter);
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

    /// <summary>Which side P is on.</summary>
    public ProjectionSide Side { get; }

    /// <summary>The layer's options.</summary>
    public LoqtOptions Options => options;

    /// <summary>r.</summary>
    public int Rank => options.Rank;

    /// <summary>α.</summary>
    public double Alpha => options.Alpha;

    /// <summary>W as stored (NF4 or dense). Replaced at every re-initialization and merge.</summary>
    public FrozenMatrix Weight => weight;

    /// <summary>P as stored (NF4 or dense; zero and dense before the first re-initialization). Replaced at every re-initialization.</summary>
    public FrozenMatrix Projection => projection;

    /// <summary>B, the trainable factor: out × r (left) or r × in (right), in the compute dtype.</summary>
    public Parameter Adapter => adapter;

    /// <summary>The trainable bias, or null.</summary>
    public Parameter? Bias => bias;

    /// <summary>How many re-initializations have run.</summary>
    public long ReinitializationCount { get; private set; }

    /// <summary>Whether backward is collecting the full gradient for a re-initialization.</summary>
    public bool IsArmed => armedMicroBatchesLeft > 0;

    /// <summary>Whether the layer holds a full-size [out, in] gradient now (only between armed micro-batches).</summary>
    internal bool HoldsFullGradient => fullGradient is not null;

    /// <summary>Where B's gradients and re-initializations are reported (an optimizer); null for plain autograd.</summary>
    public IParameterUpdateSink? UpdateSink { get; set; }

    /// <summary>Where the time of dequantization, full gradients, SVD and error compensation goes; null times nothing.</summary>
    public ITimingSink? TimingSink { get; set; }

    BackwardResultRelease ILowRankLinearHost.Release => release;

    bool ILowRankLinearHost.CollectsFullGradient => IsArmed;

    // A quantized P is dequantized again in backward rather than saved: saved, every layer's dequantized copy would stay
    // alive from its forward to its backward (for 7b at rank 1024, 1.75 GiB of bf16 P).
    int ILowRankLinearHost.RebuiltFactor => !projection.IsQuantized ? -1 : Side == ProjectionSide.Left ? 0 : 1;

    /// <summary>
    /// Makes the next <paramref name="microBatches"/> backward passes collect this layer's full gradient and, after the
    /// last of them, re-initialize the layer (merge, SVD, quantize P, error compensation) and free the gradient.
    /// Those passes produce no gradient for B: the step applies no update to it.
    /// </summary>
    /// <param name="microBatches">Micro-batches in the optimizer step (gradient accumulation), at least 1.</param>
    public void ArmReinitialization(int microBatches = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(microBatches, 1);
        DisarmReinitialization();
        armedMicroBatchesLeft = microBatches;
    }

    /// <summary>Cancels an armed re-initialization and frees any gradient collected for it.</summary>
    public void DisarmReinitialization()
    {
        armedMicroBatchesLeft = 0;
        fullGradient?.Dispose();
        fullGradient = null;
    }

    /// <summary>
    /// Puts back a projection saved with a checkpoint (B comes back through the adapter parameter). The layer takes
    /// ownership of <paramref name="savedProjection"/>.
    /// </summary>
    /// <param name="savedProjection">P as saved: NF4 or dense, of this layer's projection shape.</param>
    /// <exception cref="ArgumentException">The shape is not this layer's projection shape.</exception>
    public void RestoreProjection(FrozenMatrix savedProjection)
    {
        ArgumentNullException.ThrowIfNull(savedProjection);
        var expected = Side.ProjectionShape(InFeatures, OutFeatures, Rank);
        if (!savedProjection.Shape.SequenceEqual(expected))
        {
            throw new ArgumentException($"Layer '{GetName()}': the saved projection has shape [{string.Join(", ", savedProjection.Shape)}], the layer needs [{string.Join(", ", expected)}].", nameof(savedProjection));
        }

        projection.Dispose();
        projection = savedProjection;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() < 1 || input.shape[^1] != InFeatures)
        {
            throw new ArgumentException($"Layer '{GetName()}' expects inputs with {InFeatures} features in the last dimension; got shape [{string.Join(", ", input.shape)}].", nameof(input));
        }

        using var scope = NewDisposeScope();
        var dtype = options.ComputeDType;
        var x = input.dtype == dtype ? input : input.to(dtype);
        var p = Dequantized(projection, dtype);
        var (left, right) = Side == ProjectionSide.Left ? (p, (Tensor)adapter) : (adapter, p);
        var y = LowRankLinearFunction.apply(x, left, right, this);
        if (bias is not null)
        {
            y = y.add(UpdateSink is not null && bias.requires_grad ? GradientTap.Apply(bias, UpdateSink) : bias);
        }

        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The layer's effective weight deq(W) + α·P-product(B), [out, in], as a new tensor (<see cref="AdapterMerge.LoqtMerged"/>).</summary>
    /// <param name="dtype">The dtype of the result.</param>
    public Tensor MergedWeight(ScalarType dtype = ScalarType.Float32) =>
        AdapterMerge.LoqtMerged(weight, projection, adapter, Side, Alpha, dtype);

    /// <summary>α·B·P (left) or α·P·B (right) in fp32, [out, in], as a new tensor.</summary>
    public Tensor LowRankProduct() => AdapterMerge.LoqtProduct(projection, adapter, Side, Alpha);

    /// <summary>
    /// Folds B into W: W ← NF4(deq(W) + α·P-product(B)) (dense when W is not quantized), B ← 0. The layer's function is
    /// kept up to the quantization error of the new W. B's optimizer state no longer means anything: the update sink is
    /// told as for a re-initialization.
    /// </summary>
    public void Merge()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var merged = MergedWeight();
        var merged4 = FrozenMatrix.Create(merged, options.QuantizeWeight, options.BlockSize, options.DoubleQuantization, options.ComputeDType);
        weight.Dispose();
        weight = merged4;
        adapter.zero_();
        UpdateSink?.OnReinitialized(adapter);
    }

    /// <summary>
    /// Re-initializes the layer from its full weight gradient <paramref name="gradient"/> (what an armed backward does):
    /// merges B into W in full precision, sets P to the top-r singular vectors of G (fp32 SVD, on the side of
    /// <see cref="Side"/>), quantizes P when enabled, and chooses B and the requantized W by error compensation
    /// (<see cref="ErrorCompensation.Run"/>; with W not quantized, W is the merged weight and B = 0). Then tells the
    /// update sink that B was re-initialized.
    /// </summary>
    /// <param name="gradient">G = ∂L/∂W, [out, in] (not modified or kept).</param>
    /// <exception cref="ArgumentException">G's shape is not [out, in].</exception>
    public void Reinitialize(Tensor gradient)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        if (gradient.dim() != 2 || gradient.shape[0] != OutFeatures || gradient.shape[1] != InFeatures)
        {
            throw new ArgumentException($"The gradient of layer '{GetName()}' must have shape [{OutFeatures}, {InFeatures}]; got [{string.Join(", ", gradient.shape)}].", nameof(gradient));
        }

        ReinitializeCore(gradient, ownsGradient: false);
    }

    Tensor ILowRankLinearHost.BaseWeight(ScalarType dtype) => Dequantized(weight, dtype);

    Tensor ILowRankLinearHost.RebuildFactor(ScalarType dtype) => Dequantized(projection, dtype);

    void ILowRankLinearHost.AccumulateFullGradient(Tensor gradOutput, Tensor input)
    {
        using var clock = StageClock.Measure(TimingSink, TimedStage.FullGradient);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var contribution = gradOutput.to(ScalarType.Float32).t().matmul(input.to(ScalarType.Float32));
        if (fullGradient is null)
        {
            fullGradient = contribution.DetachFromDisposeScope();
        }
        else
        {
            fullGradient.add_(contribution);
        }
    }

    Tensor? ILowRankLinearHost.RouteFactorGradient(int index, Tensor gradient)
    {
        var isAdapter = Side == ProjectionSide.Left ? index == 1 : index == 0;
        if (!isAdapter)
        {
            return null;
        }

        return UpdateSink?.TryConsumeGradient(adapter, gradient) == true ? null : gradient;
    }

    void ILowRankLinearHost.AfterBackward()
    {
        if (armedMicroBatchesLeft == 0)
        {
            return;
        }

        armedMicroBatchesLeft--;
        if (armedMicroBatchesLeft == 0 && fullGradient is not null)
        {
            var g = fullGradient;
            fullGradient = null;
            ReinitializeCore(g, ownsGradient: true);
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            weight.Dispose();
            projection.Dispose();
            fullGradient?.Dispose();
            fullGradient = null;
        }

        base.Dispose(disposing);
    }

    private Tensor Dequantized(FrozenMatrix matrix, ScalarType dtype)
    {
        using var clock = StageClock.Measure(matrix.IsQuantized ? TimingSink : null, TimedStage.Dequantize);
        return matrix.Values(dtype);
    }

    private void ReinitializeCore(Tensor gradient, bool ownsGradient)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var dtype = options.ComputeDType;
        Tensor pNew;
        var svdClock = StageClock.Measure(TimingSink, TimedStage.Svd);
        try
        {
            // The SVD runs first so that G can be freed before the merged weight is built: peak is max(G + SVD, W + EC).
            using var generator = options.Svd.Kind == SvdKind.Randomized
                ? new Generator((ulong)StableSeed.Derive(options.Seed, GetName(), ReinitializationCount), gradient.device)
                : null;
            pNew = GradientProjection.Compute(gradient, options.Rank, Side, options.Svd, generator);
        }
        finally
        {
            if (ownsGradient)
            {
                gradient.Dispose();
            }

            svdClock.Dispose();
        }

        using var compensationClock = StageClock.Measure(TimingSink, TimedStage.ErrorCompensation);
        var merged = MergedWeight();
        var newProjection = FrozenMatrix.Create(pNew, options.QuantizeProjection, options.BlockSize, options.DoubleQuantization, dtype);
        pNew.Dispose();
        FrozenMatrix newWeight;
        if (options.QuantizeWeight)
        {
            var used = newProjection.Values(ScalarType.Float32);
            var result = ErrorCompensation.Run(merged, used, Side, Alpha, options.ErrorCompensationIterations, options.BlockSize, options.DoubleQuantization);
            newWeight = FrozenMatrix.FromQuantized(result.Weight);
            adapter.copy_(result.Adapter);
            result.Adapter.Dispose();
        }
        else
        {
            newWeight = FrozenMatrix.FromDense(merged, dtype);
            adapter.zero_();
        }

        merged.Dispose();
        weight.Dispose();
        weight = newWeight;
        projection.Dispose();
        projection = newProjection;
        ReinitializationCount++;
        UpdateSink?.OnReinitialized(adapter);
    }
}
