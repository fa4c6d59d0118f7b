using LoQT.Loqt;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// AdamW over named parameters, with what LoQT training needs around it: per-parameter state reset after a
/// re-initialization (and no update at that step), optional GaLore projection per parameter, per-layer updates inside
/// backward, gradient clipping, and state export/import for checkpoints. Subclasses choose how the moments are stored.
/// </summary>
/// <remarks>
/// <para>
/// Ordinary use: backward, then <see cref="Step"/> (which also frees the gradients). With gradient accumulation call
/// <see cref="BeginMicroBatch"/> before each micro-batch's backward when per-layer updates are on.
/// </para>
/// <para>
/// Per-layer updates (<see cref="AdamWOptions.PerLayerUpdates"/>): layers (and <see cref="GradientTap"/>) hand each
/// gradient to this optimizer (<see cref="IParameterUpdateSink"/>) the moment it is complete; on the last micro-batch
/// of a step the parameter is updated there and its gradient dropped, on earlier ones the gradient is added to an
/// fp32 buffer. <see cref="Step"/> then updates whatever did not come through that way and ends the step.
/// </para>
/// <para>
/// Clipping: ordinarily the global 2-norm over all gradients of the step is clipped to
/// <see cref="AdamWOptions.MaxGradNorm"/> (PyTorch's <c>clip_grad_norm_</c>: scale by max/(norm + 1e-6) when below 1).
/// With per-layer updates the global norm is not known when the first parameter is updated, so each parameter's
/// gradient is clipped to the threshold on its own (the global norm can then reach max·√(number of parameters)).
/// </para>
/// </remarks>
public abstract class AdamWOptimizer : IParameterUpdateSink, IDisposable
{
    private readonly List<Slot> slots = [];
    private readonly Dictionary<Parameter, Slot> byParameter = new(ReferenceEqualityComparer.Instance);
    private bool lastMicroBatch = true;
    private bool discardThisStep;
    private bool disposed;

    /// <summary>Registers the parameters.</summary>
    /// <param name="parameters">Named parameters (names unique).</param>
    /// <param name="options">Hyper-parameters.</param>
    /// <exception cref="ArgumentException">Duplicate names or parameters, or a GaLore parameter that is not 2-D or whose rank does not fit.</exception>
    protected AdamWOptimizer(IEnumerable<TrainableParameter> parameters, AdamWOptions options)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        LearningRate = options.LearningRate;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var spec in parameters)
        {
            ArgumentNullException.ThrowIfNull(spec);
            if (!names.Add(spec.Name))
            {
                throw new ArgumentException($"Parameter name '{spec.Name}' is given twice.", nameof(parameters));
            }

            if (spec.GaLore is { } galore)
            {
                var shape = spec.Parameter.shape;
                if (shape.Length != 2)
                {
                    throw new ArgumentException($"GaLore needs a 2-D parameter; '{spec.Name}' has shape [{string.Join(", ", shape)}].", nameof(parameters));
                }

                if (galore.Rank < 1 || galore.Rank >= Math.Min(shape[0], shape[1]))
                {
                    throw new ArgumentOutOfRangeException("rank", galore.Rank, $"rank {galore.Rank} must be at least 1 and smaller than min(in, out) = {Math.Min(shape[0], shape[1])} of '{spec.Name}'.");
                }
            }

            var slot = new Slot(spec);
            if (!byParameter.TryAdd(spec.Parameter, slot))
            {
                throw new ArgumentException($"Parameter '{spec.Name}' is registered twice (under another name too).", nameof(parameters));
            }

            slots.Add(slot);
        }

        Parameters = slots.Select(s => s.Spec).ToArray();
    }

    /// <summary>The hyper-parameters.</summary>
    public AdamWOptions Options { get; }

    /// <summary>The learning rate of the next update (set it from a schedule before each step).</summary>
    public double LearningRate { get; set; }

    /// <summary>Optimizer updates completed (calls of <see cref="Step"/>); GaLore's projection schedule counts these.</summary>
    public long StepCount { get; private set; }

    /// <summary>The registered parameters.</summary>
    public IReadOnlyList<TrainableParameter> Parameters { get; }

    /// <summary>Bytes of optimizer state held now: the moments of every parameter that has them, and GaLore's projections.</summary>
    public long StateBytes => slots.Sum(s => (s.Moments?.StorageBytes ?? 0) + (s.Projection is { } p ? p.numel() * p.ElementSize : 0));

    /// <summary>
    /// Says whether the coming backward is the last micro-batch of the current step (per-layer updates step then, and
    /// buffer the gradients of earlier micro-batches). Without gradient accumulation it need not be called.
    /// </summary>
    /// <param name="lastOfStep">True on the last micro-batch of the step.</param>
    /// <param name="discard">
    /// The step applies no update (a re-initialization step): per-layer gradients are dropped as they arrive instead of
    /// being buffered in fp32 (for 7b, lm_head's alone would hold 500 MiB through the whole backward).
    /// </param>
    public void BeginMicroBatch(bool lastOfStep, bool discard = false)
    {
        lastMicroBatch = lastOfStep;
        discardThisStep = discard;
    }

    /// <summary>
    /// Ends an optimizer step: updates every parameter that has a gradient and was neither updated per-layer nor
    /// re-initialized in this step, clipping first (see the class remarks), then drops all gradients, clears the
    /// re-initialization marks and counts the step.
    /// </summary>
    /// <returns>The global gradient norm before clipping (ordinary updates), or null with per-layer updates.</returns>
    public double? Step()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pending = new List<(Slot Slot, Tensor Grad)>();
        foreach (var slot in slots)
        {
            var grad = slot.Spec.Parameter.grad;
            if (slot.PendingGradient is not null && !slot.SkipThisStep && !slot.UpdatedThisStep)
            {
                // Per-layer buffering with no final micro-batch seen (the parameter got no gradient then).
                pending.Add((slot, grad is null ? slot.PendingGradient : slot.PendingGradient.add_(grad)));
            }
            else if (grad is not null && !slot.SkipThisStep && !slot.UpdatedThisStep)
            {
                pending.Add((slot, grad));
            }
        }

        double? totalNorm = null;
        if (Options.MaxGradNorm > 0 && pending.Count > 0)
        {
            if (Options.PerLayerUpdates)
            {
                foreach (var (_, grad) in pending)
                {
                    GradientClipping.ClipInPlace([grad], Options.MaxGradNorm);
                }
            }
            else
            {
                totalNorm = GradientClipping.ClipInPlace(pending.Select(p => p.Grad).ToArray(), Options.MaxGradNorm);
            }
        }
        else if (!Options.PerLayerUpdates && pending.Count > 0)
        {
            totalNorm = GradientClipping.TotalNorm(pending.Select(p => p.Grad).ToArray());
        }

        foreach (var (slot, grad) in pending)
        {
            Update(slot, grad);
        }

        foreach (var slot in slots)
        {
            slot.Spec.Parameter.grad = null;
            slot.PendingGradient?.Dispose();
            slot.PendingGradient = null;
            slot.UpdatedThisStep = false;
            slot.SkipThisStep = false;
        }

        lastMicroBatch = true;
        discardThisStep = false;
        StepCount++;
        return totalNorm;
    }

    /// <summary>Drops all gradients and per-layer buffers without updating anything.</summary>
    public void ZeroGrad()
    {
        foreach (var slot in slots)
        {
            slot.Spec.Parameter.grad = null;
            slot.PendingGradient?.Dispose();
            slot.PendingGradient = null;
        }
    }

    /// <summary>
    /// Forgets the state of <paramref name="parameter"/> (moments, step count, GaLore projection) and skips its update
    /// in the current step. Called by LoQT layers through <see cref="IParameterUpdateSink.OnReinitialized"/>.
    /// </summary>
    /// <param name="parameter">A registered parameter.</param>
    /// <exception cref="ArgumentException">The parameter is not registered.</exception>
    public void ResetState(Parameter parameter)
    {
        var slot = Find(parameter);
        slot.Moments?.Dispose();
        slot.Moments = null;
        slot.Projection?.Dispose();
        slot.Projection = null;
        slot.PendingGradient?.Dispose();
        slot.PendingGradient = null;
        slot.SkipThisStep = true;
    }

    /// <summary>The number of Adam updates <paramref name="parameter"/> has taken since its state was created or reset.</summary>
    /// <param name="parameter">A registered parameter.</param>
    public long ParameterStepCount(Parameter parameter) => Find(parameter).Moments?.Step ?? 0;

    /// <inheritdoc/>
    public bool TryConsumeGradient(Parameter parameter, Tensor gradient)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        if (!Options.PerLayerUpdates || !byParameter.TryGetValue(parameter, out var slot))
        {
            return false;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (slot.SkipThisStep || discardThisStep)
        {
            return true;
        }

        if (!lastMicroBatch)
        {
            if (slot.PendingGradient is null)
            {
                slot.PendingGradient = gradient.to(ScalarType.Float32, copy: true).DetachFromDisposeScope();
            }
            else
            {
                slot.PendingGradient.add_(gradient);
            }

            return true;
        }

        var total = slot.PendingGradient is null ? gradient : slot.PendingGradient.add_(gradient);
        var scale = 1.0;
        if (Options.MaxGradNorm > 0)
        {
            // Clipped as it is converted, slice by slice, rather than in an fp32 copy of the whole gradient: inside
            // backward every activation is still alive, and lm_head's gradient alone is 131M elements for 7b.
            var norm = GradientClipping.TotalNorm(Slices(total.reshape(-1), total.numel(), UpdateSliceElements).Select(s => s.Slice).ToArray());
            var coefficient = Options.MaxGradNorm / (norm + 1e-6);
            scale = coefficient < 1 ? coefficient : 1;
        }

        Update(slot, total, scale);
        slot.PendingGradient?.Dispose();
        slot.PendingGradient = null;
        slot.UpdatedThisStep = true;
        return true;
    }

    /// <inheritdoc/>
    public void OnReinitialized(Parameter parameter)
    {
        if (byParameter.ContainsKey(parameter))
        {
            ResetState(parameter);
        }
    }

    /// <summary>The state as named tensor copies and scalars (see <see cref="OptimizerState"/>).</summary>
    public OptimizerState ExportState()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        using var noGrad = no_grad();
        var state = new OptimizerState();
        state.Scalars["step_count"] = StepCount;
        state.Scalars["learning_rate"] = LearningRate;
        foreach (var slot in slots)
        {
            slot.Moments?.Export(slot.Spec.Name, state);
            if (slot.Projection is not null)
            {
                state.Tensors[slot.Spec.Name + ".galore_projection"] = slot.Projection.clone();
            }
        }

        return state;
    }

    /// <summary>
    /// Replaces the state with <paramref name="state"/> (from <see cref="ExportState"/> of an optimizer over the same
    /// names and shapes). Parameters without a step scalar in it start fresh.
    /// </summary>
    /// <param name="state">The state to load (copied; not kept).</param>
    /// <exception cref="InvalidDataException">A tensor is missing or does not fit.</exception>
    public void ImportState(OptimizerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        ObjectDisposedException.ThrowIf(disposed, this);
        using var noGrad = no_grad();
        StepCount = state.Scalars.TryGetValue("step_count", out var steps) ? (long)steps : 0;
        if (state.Scalars.TryGetValue("learning_rate", out var lr))
        {
            LearningRate = lr;
        }

        foreach (var slot in slots)
        {
            slot.Moments?.Dispose();
            slot.Moments = null;
            slot.Projection?.Dispose();
            slot.Projection = null;
            var name = slot.Spec.Name;
            if (!state.Scalars.ContainsKey(name + ".step"))
            {
                continue;
            }

            Tensor? projection = null;
            if (slot.Spec.GaLore is not null)
            {
                if (!state.Tensors.TryGetValue(name + ".galore_projection", out var saved))
                {
                    throw new InvalidDataException($"Optimizer state has no tensor '{name}.galore_projection'.");
                }

                projection = saved.to(ScalarType.Float32, slot.Spec.Parameter.device, copy: true);
                slot.Projection = projection;
            }

            var shape = MomentShape(slot.Spec, projection);
            slot.Moments = CreateMoments(shape, slot.Spec.Parameter.device);
            slot.Moments.Import(name, state);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        foreach (var slot in slots)
        {
            slot.Moments?.Dispose();
            slot.Projection?.Dispose();
            slot.PendingGradient?.Dispose();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Creates the (zero) moments for a parameter or projected gradient of <paramref name="shape"/>.</summary>
    private protected abstract AdamMoments CreateMoments(long[] shape, Device device);

    private static long[] MomentShape(TrainableParameter spec, Tensor? projection)
    {
        if (spec.GaLore is null || projection is null)
        {
            return spec.Parameter.shape;
        }

        var shape = spec.Parameter.shape;
        var side = ProjectionSides.For(shape[1], shape[0]);
        return side == ProjectionSide.Left ? [shape[0], projection.shape[0]] : [projection.shape[1], shape[1]];
    }

    private Slot Find(Parameter parameter) =>
        parameter is not null && byParameter.TryGetValue(parameter, out var slot)
            ? slot
            : throw new ArgumentException("The parameter is not registered with this optimizer.", nameof(parameter));

    /// <summary>
    /// Parameters are updated in slices of this many elements (a multiple of every moment store's block size), so an
    /// update's fp32 scratch (gradient, parameter copy, dequantized moments, denominator) is a slice's worth, not about
    /// 20 bytes per element of the largest parameter (the 7b embedding and lm_head have 131M elements each).
    /// </summary>
    public const long UpdateSliceElements = 1L << 21;

    /// <summary>Where the time of parameter updates goes; null (the default) times nothing.</summary>
    public ITimingSink? TimingSink { get; set; }

    private static IEnumerable<(Tensor Slice, long Offset)> Slices(Tensor flat, long count, long size)
    {
        if (count <= size)
        {
            yield return (flat, 0);
            yield break;
        }

        for (long offset = 0; offset < count; offset += size)
        {
            yield return (flat.narrow(0, offset, Math.Min(size, count - offset)), offset);
        }
    }

    private void Update(Slot slot, Tensor gradient, double gradientScale = 1)
    {
        using var clock = StageClock.Measure(TimingSink, TimedStage.Optimizer);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (slot.Spec.GaLore is { } galore)
        {
            UpdateGaLore(slot, galore, ScaledFp32(gradient, gradientScale));
            return;
        }

        var parameter = slot.Spec.Parameter;
        var weightDecay = slot.Spec.ApplyWeightDecay ? Options.WeightDecay : 0;
        slot.Moments ??= CreateMoments(parameter.shape, parameter.device);
        slot.Moments.BeginUpdate();
        var flatGradient = gradient.reshape(-1);
        foreach (var (slice, offset) in Slices(parameter.view(-1), parameter.numel(), UpdateSliceElements))
        {
            using var sliceScope = NewDisposeScope();
            var grad = ScaledFp32(flatGradient.narrow(0, offset, slice.numel()), gradientScale);
            var p32 = slice.dtype == ScalarType.Float32 ? slice : slice.to(ScalarType.Float32);
            slot.Moments.ApplySlice(p32, grad, offset, LearningRate, weightDecay, Options);
            if (!ReferenceEquals(p32, slice))
            {
                slice.copy_(p32);
            }
        }
    }

    // The gradient in fp32, times the clipping scale (a copy then, so that autograd's tensor is left as it is).
    private static Tensor ScaledFp32(Tensor gradient, double scale) =>
        scale == 1 ? gradient.to(ScalarType.Float32) : gradient.to(ScalarType.Float32, copy: true).mul_(scale);

    private void UpdateGaLore(Slot slot, GaLoreSettings galore, Tensor grad)
    {
        var parameter = slot.Spec.Parameter;
        var weightDecay = slot.Spec.ApplyWeightDecay ? Options.WeightDecay : 0;
        var p32 = parameter.dtype == ScalarType.Float32 ? (Tensor)parameter : parameter.to(ScalarType.Float32);
        var shape = parameter.shape;
        var side = ProjectionSides.For(shape[1], shape[0]);
        // The projection is refreshed at the schedule's optimizer steps. (The reference's GaLoreProjector tests
        // iter % gap == 0 on the parameter's own step count, switching the gap to each listed step as it is reached
        // for non-static schedules; for the static schedule that is the same list.)
        if (slot.Projection is null || galore.Schedule.IsUpdateStep(StepCount))
        {
            slot.Projection?.Dispose();
            slot.Projection = GradientProjection.Compute(grad, galore.Rank, side, galore.Svd).DetachFromDisposeScope();
        }

        var p = slot.Projection;
        var low = side == ProjectionSide.Left ? grad.matmul(p.t()) : p.t().matmul(grad);
        slot.Moments ??= CreateMoments(low.shape, parameter.device);
        var direction = slot.Moments.Direction(low, Options);
        var back = side == ProjectionSide.Left ? direction.matmul(p) : p.matmul(direction);
        if (weightDecay != 0)
        {
            p32.mul_(1 - (LearningRate * weightDecay));
        }

        p32.add_(back, -LearningRate * galore.Scale);
        if (!ReferenceEquals(p32, parameter))
        {
            parameter.copy_(p32);
        }
    }

    private sealed class Slot(TrainableParameter spec)
    {
        public TrainableParameter Spec { get; } = spec;

        public AdamMoments? Moments { get; set; }

        public Tensor? Projection { get; set; }

        public Tensor? PendingGradient { get; set; }

        public bool UpdatedThisStep { get; set; }

        public bool SkipThisStep { get; set; }
    }
}
