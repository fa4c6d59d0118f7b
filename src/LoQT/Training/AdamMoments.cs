using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>The Adam state of one parameter (or of its GaLore projection): step count and the two moments.</summary>
internal abstract class AdamMoments : IDisposable
{
    /// <summary>Updates taken since the state was created or reset.</summary>
    public long Step { get; set; }

    /// <summary>Bytes of the moments' storage.</summary>
    public abstract long StorageBytes { get; }

    /// <summary>Starts one AdamW update: increments <see cref="Step"/>. Follow it with <see cref="ApplySlice"/> over every element.</summary>
    public void BeginUpdate() => Step++;

    /// <summary>
    /// The update begun by <see cref="BeginUpdate"/> for elements [<paramref name="offset"/>, offset + n) of the flattened
    /// parameter: <paramref name="param"/> (flat fp32, n elements, updated in place) with gradient <paramref name="grad"/>
    /// (flat fp32, n elements): decoupled decay, then the bias-corrected Adam step. Elementwise, so updating a large
    /// parameter slice by slice gives what one whole update gives, with scratch the size of a slice.
    /// </summary>
    /// <param name="param">The slice of the parameter.</param>
    /// <param name="grad">The same slice of the gradient.</param>
    /// <param name="offset">Where the slice starts in the flattened parameter (for blockwise-quantized moments, a multiple of their block size).</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="weightDecay">Decoupled weight decay.</param>
    /// <param name="options">β1, β2, ε.</param>
    public abstract void ApplySlice(Tensor param, Tensor grad, long offset, double lr, double weightDecay, AdamWOptions options);

    /// <summary>
    /// Updates the moments with <paramref name="grad"/> and returns the direction d (new tensor, fp32) such that the
    /// Adam update is p ← p − lr·d. Increments <see cref="Step"/>. Used where the update is transformed first (GaLore).
    /// </summary>
    public abstract Tensor Direction(Tensor grad, AdamWOptions options);

    /// <summary>Adds this state's tensors (copies) and step to <paramref name="state"/> under <paramref name="prefix"/>.</summary>
    public abstract void Export(string prefix, OptimizerState state);

    /// <summary>Loads this state's tensors and step from <paramref name="state"/>.</summary>
    /// <exception cref="InvalidDataException">A tensor is missing or has the wrong shape or dtype.</exception>
    public abstract void Import(string prefix, OptimizerState state);

    /// <inheritdoc/>
    public abstract void Dispose();

    /// <summary>Copies the state tensor <paramref name="name"/> into <paramref name="target"/> after checking shape and dtype.</summary>
    protected static void CopyChecked(OptimizerState state, string name, Tensor target)
    {
        if (!state.Tensors.TryGetValue(name, out var source))
        {
            throw new InvalidDataException($"Optimizer state has no tensor '{name}'.");
        }

        if (!source.shape.SequenceEqual(target.shape) || source.dtype != target.dtype)
        {
            throw new InvalidDataException(
                $"Optimizer state tensor '{name}' is {source.dtype} [{string.Join(", ", source.shape)}]; expected {target.dtype} [{string.Join(", ", target.shape)}].");
        }

        using var noGrad = no_grad();
        target.copy_(source);
    }

    /// <summary>Reads the step scalar.</summary>
    protected static long ReadStep(OptimizerState state, string prefix)
    {
        var key = prefix + ".step";
        if (!state.Scalars.TryGetValue(key, out var value) || value < 0 || value != Math.Floor(value))
        {
            throw new InvalidDataException($"Optimizer state has no valid scalar '{key}'.");
        }

        return (long)value;
    }
}

/// <summary>fp32 moments, updated exactly as PyTorch's single-tensor AdamW.</summary>
internal sealed class Fp32AdamMoments : AdamMoments
{
    private readonly Tensor expAvg;
    private readonly Tensor expAvgSq;

    public Fp32AdamMoments(long[] shape, Device device)
    {
        expAvg = zeros(shape, ScalarType.Float32, device).DetachFromDisposeScope(); // created inside the update's dispose scope, but lives as long as the optimizer
        expAvgSq = zeros(shape, ScalarType.Float32, device).DetachFromDisposeScope(); // created inside the update's dispose scope, but lives as long as the optimizer
    }

    public override long StorageBytes => 2 * 4 * expAvg.numel();

    public override void ApplySlice(Tensor param, Tensor grad, long offset, double lr, double weightDecay, AdamWOptions options)
    {
        using var scope = NewDisposeScope();
        var n = param.numel();
        var m = expAvg.view(-1).narrow(0, offset, n);
        var v = expAvgSq.view(-1).narrow(0, offset, n);
        if (weightDecay != 0)
        {
            param.mul_(1 - (lr * weightDecay));
        }

        var (stepSize, denom) = UpdateMoments(m, v, grad, options, lr);
        param.addcdiv_(m, denom, -stepSize);
    }

    public override Tensor Direction(Tensor grad, AdamWOptions options)
    {
        using var scope = NewDisposeScope();
        Step++;
        var (scale, denom) = UpdateMoments(expAvg, expAvgSq, grad, options, 1.0);
        return (expAvg / denom).mul_(scale).MoveToOuterDisposeScope();
    }

    public override void Export(string prefix, OptimizerState state)
    {
        state.Tensors[prefix + ".exp_avg"] = expAvg.clone();
        state.Tensors[prefix + ".exp_avg_sq"] = expAvgSq.clone();
        state.Scalars[prefix + ".step"] = Step;
    }

    public override void Import(string prefix, OptimizerState state)
    {
        CopyChecked(state, prefix + ".exp_avg", expAvg);
        CopyChecked(state, prefix + ".exp_avg_sq", expAvgSq);
        Step = ReadStep(state, prefix);
    }

    public override void Dispose()
    {
        expAvg.Dispose();
        expAvgSq.Dispose();
    }

    // PyTorch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    // denom = exp_avg_sq.sqrt() / sqrt(bias_correction2) + eps; step_size = lr / bias_correction1.
    private (double StepSize, Tensor Denominator) UpdateMoments(Tensor expAvg, Tensor expAvgSq, Tensor grad, AdamWOptions options, double lr)
    {
        expAvg.lerp_(grad, 1 - options.Beta1);
        expAvgSq.mul_(options.Beta2).addcmul_(grad, grad, 1 - options.Beta2);
        var biasCorrection1 = 1 - Math.Pow(options.Beta1, Step);
        var biasCorrection2 = 1 - Math.Pow(options.Beta2, Step);
        var denom = expAvgSq.sqrt().div_(Math.Sqrt(biasCorrection2)).add_(options.Epsilon);
        return (lr / biasCorrection1, denom);
    }
}
