namespace LoQT.Training;

/// <summary>The shape of the learning-rate schedule after warmup.</summary>
public enum LearningRateScheduleKind
{
    /// <summary>The peak rate after warmup.</summary>
    Constant,

    /// <summary>Linear decay from the peak at the end of warmup to min-ratio·peak at the last step (Hugging Face's linear schedule when the ratio is 0).</summary>
    Linear,

    /// <summary>Cosine decay from the peak to min-ratio·peak (the LoQT reference's cosine schedule, one cycle).</summary>
    Cosine,
}

/// <summary>
/// The learning rate of every optimizer update (0-based, as PyTorch's <c>LambdaLR</c>): linear warmup
/// peak·step/warmup for step &lt; warmup, then constant, linear or cosine decay.
/// </summary>
public sealed record LearningRateSchedule
{
    /// <summary>Creates a schedule.</summary>
    /// <param name="kind">Constant, linear or cosine.</param>
    /// <param name="peakLearningRate">The rate at the end of warmup.</param>
    /// <param name="warmupSteps">Warmup updates (0 for none).</param>
    /// <param name="totalSteps">Total updates (the decay ends there; later steps keep the final rate). Unused when constant.</param>
    /// <param name="minLearningRateRatio">Final rate / peak; null: 0.1 for cosine (the reference's <c>min_lr_ratio</c>), 0 for linear.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range (the option is named).</exception>
    public LearningRateSchedule(LearningRateScheduleKind kind, double peakLearningRate, long warmupSteps = 0, long totalSteps = 1, double? minLearningRateRatio = null)
    {
        if (!(peakLearningRate >= 0) || double.IsInfinity(peakLearningRate))
        {
            throw new ArgumentOutOfRangeException("lr", peakLearningRate, $"lr must be a finite number of at least 0; got {peakLearningRate}.");
        }

        if (warmupSteps < 0)
        {
            throw new ArgumentOutOfRangeException("warmup", warmupSteps, $"warmup must be 0 or more; got {warmupSteps}.");
        }

        if (kind != LearningRateScheduleKind.Constant && totalSteps < 1)
        {
            throw new ArgumentOutOfRangeException("steps", totalSteps, $"steps must be at least 1; got {totalSteps}.");
        }

        if (kind != LearningRateScheduleKind.Constant && warmupSteps > totalSteps)
        {
            throw new ArgumentOutOfRangeException("warmup", warmupSteps, $"warmup ({warmupSteps}) must not exceed steps ({totalSteps}).");
        }

        var ratio = minLearningRateRatio ?? (kind == LearningRateScheduleKind.Cosine ? 0.1 : 0.0);
        if (!(ratio >= 0 && ratio <= 1))
        {
            throw new ArgumentOutOfRangeException("min-lr-ratio", ratio, $"min-lr-ratio must be in [0, 1]; got {ratio}.");
        }

        Kind = kind;
        PeakLearningRate = peakLearningRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
        MinLearningRateRatio = ratio;
    }

    /// <summary>Constant, linear or cosine.</summary>
    public LearningRateScheduleKind Kind { get; }

    /// <summary>The rate at the end of warmup.</summary>
    public double PeakLearningRate { get; }

    /// <summary>Warmup updates.</summary>
    public long WarmupSteps { get; }

    /// <summary>Total updates.</summary>
    public long TotalSteps { get; }

    /// <summary>Final rate / peak.</summary>
    public double MinLearningRateRatio { get; }

    /// <summary>Parses <c>constant</c>, <c>linear</c> or <c>cosine</c>.</summary>
    /// <param name="name">The name (case-insensitive).</param>
    /// <param name="optionName">The option to name in the error.</param>
    /// <exception cref="ArgumentException">Unknown name.</exception>
    public static LearningRateScheduleKind ParseKind(string name, string optionName = "lr-schedule")
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "constant" => LearningRateScheduleKind.Constant,
            "linear" => LearningRateScheduleKind.Linear,
            "cosine" => LearningRateScheduleKind.Cosine,
            _ => throw new ArgumentException($"Unknown learning-rate schedule '{name}' for {optionName}: expected one of constant, linear, cosine.", optionName),
        };
    }

    /// <summary>The learning rate of update <paramref name="step"/> (0-based).</summary>
    /// <param name="step">The update index.</param>
    public double At(long step) => PeakLearningRate * Multiplier(Math.Max(0, step));

    private double Multiplier(long step)
    {
        if (step < WarmupSteps)
        {
            return (double)step / WarmupSteps;
        }

        if (Kind == LearningRateScheduleKind.Constant)
        {
            return 1;
        }

        var progress = Math.Min(1.0, (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps));
        var decay = Kind == LearningRateScheduleKind.Linear ? 1 - progress : 0.5 * (1 + Math.Cos(Math.PI * progress));
        return MinLearningRateRatio + ((1 - MinLearningRateRatio) * decay);
    }
}
