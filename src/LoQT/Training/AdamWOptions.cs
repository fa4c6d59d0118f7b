namespace LoQT.Training;

/// <summary>Hyper-parameters of AdamW (and of 8-bit AdamW), with PyTorch's defaults.</summary>
public sealed record AdamWOptions
{
    /// <summary>The starting learning rate (a schedule sets <see cref="AdamWOptimizer.LearningRate"/> per step).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>β₁, the decay of the first moment.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>β₂, the decay of the second moment.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>ε, added to the denominator.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Decoupled weight decay λ: p ← p·(1 − lr·λ) before the Adam update (for parameters that take decay).</summary>
    public double WeightDecay { get; init; }

    /// <summary>Gradient clipping threshold (2-norm); 0 for none. See <see cref="AdamWOptimizer.Step"/> for per-layer semantics.</summary>
    public double MaxGradNorm { get; init; }

    /// <summary>
    /// Per-layer updates: each parameter is stepped inside backward as soon as its gradient is complete (through
    /// <see cref="LoQT.Loqt.IParameterUpdateSink"/>), and its gradient is freed; no full set of gradients is ever held.
    /// </summary>
    public bool PerLayerUpdates { get; init; }

    /// <summary>Checks the ranges, naming the option in the error.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public void Validate()
    {
        if (!(LearningRate >= 0) || double.IsInfinity(LearningRate))
        {
            throw new ArgumentOutOfRangeException("lr", LearningRate, $"lr must be a finite number of at least 0; got {LearningRate}.");
        }

        if (!(Beta1 >= 0 && Beta1 < 1))
        {
            throw new ArgumentOutOfRangeException("beta1", Beta1, $"beta1 must be in [0, 1); got {Beta1}.");
        }

        if (!(Beta2 >= 0 && Beta2 < 1))
        {
            throw new ArgumentOutOfRangeException("beta2", Beta2, $"beta2 must be in [0, 1); got {Beta2}.");
        }

        if (!(Epsilon >= 0) || double.IsInfinity(Epsilon))
        {
            throw new ArgumentOutOfRangeException("eps", Epsilon, $"eps must be a finite number of at least 0; got {Epsilon}.");
        }

        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
        {
            throw new ArgumentOutOfRangeException("weight-decay", WeightDecay, $"weight-decay must be a finite number of at least 0; got {WeightDecay}.");
        }

        if (!(MaxGradNorm >= 0) || double.IsInfinity(MaxGradNorm))
        {
            throw new ArgumentOutOfRangeException("max-grad-norm", MaxGradNorm, $"max-grad-norm must be a finite number of at least 0 (0: no clipping); got {MaxGradNorm}.");
        }
    }
}
