namespace LoQT.Loqt;

/// <summary>How the gap between re-initializations grows.</summary>
public enum MergeScheduleKind
{
    /// <summary>Every T updates.</summary>
    Static,

    /// <summary>The gap grows by a constant increment: T + c, T + 2c, …</summary>
    Linear,

    /// <summary>The gap after the k-th is T + floor(ψ^k).</summary>
    Exponential,
}

/// <summary>
/// The optimizer updates at which LoQT merges B into W and re-initializes P and B (and GaLore refreshes its projection):
/// the reference's <c>get_proj_update_steps</c>.
/// </summary>
/// <remarks>
/// <para>
/// Steps count optimizer updates (0-based), not micro-batches. Always starts with 0; the first gap is T; then
/// static: every T; linear: gap ← gap + c, next = current + int(gap); exponential: next = current + T + floor(ψ^k)
/// for k = 1, 2, …. The increment c and the growth ψ are the reference's <c>increment_size</c>.
/// </para>
/// <para>
/// With a max gap, every gap is capped at it. (The reference instead clamps the step numbers themselves to
/// <c>max_proj_gap</c>, which collapses every later update onto one step; capping the gap is what the option
/// describes.)
/// </para>
/// </remarks>
public sealed record MergeSchedule
{
    /// <summary>Creates a schedule.</summary>
    /// <param name="kind">Static, linear or exponential.</param>
    /// <param name="interval">T: the first gap (and every gap when static).</param>
    /// <param name="increment">Linear: the gap's increment c; exponential: the growth ψ. Ignored when static.</param>
    /// <param name="maxGap">Cap on every gap; null for none.</param>
    /// <exception cref="ArgumentOutOfRangeException">T &lt; 1, a negative or non-finite increment, ψ &lt; 1, or a max gap &lt; 1.</exception>
    public MergeSchedule(MergeScheduleKind kind, int interval, double increment = 1.2, int? maxGap = null)
    {
        if (interval < 1)
        {
            throw new ArgumentOutOfRangeException("update-interval", interval, $"update-interval must be at least 1; got {interval}.");
        }

        if (!double.IsFinite(increment) || increment < 0 || (kind == MergeScheduleKind.Exponential && increment < 1))
        {
            throw new ArgumentOutOfRangeException(
                "interval-growth",
                increment,
                kind == MergeScheduleKind.Exponential
                    ? $"interval-growth must be a finite number of at least 1 for the exponential schedule; got {increment}."
                    : $"interval-growth must be a finite number of at least 0; got {increment}.");
        }

        if (maxGap is < 1)
        {
            throw new ArgumentOutOfRangeException("max-gap", maxGap, $"max-gap must be at least 1; got {maxGap}.");
        }

        Kind = kind;
        Interval = interval;
        Increment = increment;
        MaxGap = maxGap;
    }

    /// <summary>Static, linear or exponential.</summary>
    public MergeScheduleKind Kind { get; }

    /// <summary>T, the first gap.</summary>
    public int Interval { get; }

    /// <summary>The linear increment or exponential growth.</summary>
    public double Increment { get; }

    /// <summary>Cap on every gap, or null.</summary>
    public int? MaxGap { get; }

    /// <summary>Every T updates.</summary>
    /// <param name="interval">T.</param>
    public static MergeSchedule Static(int interval) => new(MergeScheduleKind.Static, interval, 0);

    /// <summary>Gaps T + c, T + 2c, … (each truncated to an integer).</summary>
    /// <param name="interval">T.</param>
    /// <param name="increment">c.</param>
    /// <param name="maxGap">Optional cap on every gap.</param>
    public static MergeSchedule Linear(int interval, double increment, int? maxGap = null) => new(MergeScheduleKind.Linear, interval, increment, maxGap);

    /// <summary>First gap T, then T + floor(ψ^k) for k = 1, 2, ….</summary>
    /// <param name="interval">T.</param>
    /// <param name="growth">ψ.</param>
    /// <param name="maxGap">Optional cap on every gap.</param>
    public static MergeSchedule Exponential(int interval, double growth, int? maxGap = null) => new(MergeScheduleKind.Exponential, interval, growth, maxGap);

    /// <summary>Parses a schedule kind name: <c>static</c>, <c>linear</c> or <c>exponential</c>.</summary>
    /// <param name="name">The name (case-insensitive).</param>
    /// <param name="optionName">The option to name in the error.</param>
    /// <exception cref="ArgumentException">Unknown name.</exception>
    public static MergeScheduleKind ParseKind(string name, string optionName = "schedule")
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "static" => MergeScheduleKind.Static,
            "linear" => MergeScheduleKind.Linear,
            "exponential" => MergeScheduleKind.Exponential,
            _ => throw new ArgumentException($"Unknown schedule '{name}' for {optionName}: expected one of static, linear, exponential.", optionName),
        };
    }

    /// <summary>The update steps in order, without end (0 first).</summary>
    public IEnumerable<long> Steps()
    {
        long current = 0;
        yield return current;
        double linearGap = Interval;
        for (var k = 0; ; k++)
        {
            var gap = k == 0 ? Interval : NextGap(k, ref linearGap);
            if (MaxGap is { } cap && gap > cap)
            {
                gap = cap;
            }

            if (current > long.MaxValue - gap)
            {
                yield break;
            }

            current += gap;
            yield return current;
        }
    }

    /// <summary>The update steps up to and including <paramref name="lastStep"/> (the reference's list for <c>num_training_steps = lastStep</c>).</summary>
    /// <param name="lastStep">The last step to include.</param>
    public IReadOnlyList<long> StepsThrough(long lastStep) => Steps().TakeWhile(s => s <= lastStep).ToArray();

    /// <summary>Whether P and B are re-initialized at optimizer update <paramref name="step"/> (0-based).</summary>
    /// <param name="step">The update index.</param>
    public bool IsUpdateStep(long step)
    {
        if (step < 0)
        {
            return false;
        }

        foreach (var s in Steps())
        {
            if (s >= step)
            {
                return s == step;
            }
        }

        return false;
    }

    /// <summary>The first update step after <paramref name="step"/>, or null if none fits in a long.</summary>
    /// <param name="step">The update index.</param>
    public long? NextUpdateStepAfter(long step)
    {
        foreach (var s in Steps())
        {
            if (s > step)
            {
                return s;
            }
        }

        return null;
    }

    private long NextGap(int k, ref double linearGap)
    {
        switch (Kind)
        {
            case MergeScheduleKind.Static:
                return Interval;
            case MergeScheduleKind.Linear:
                linearGap += Increment;
                return Truncate(linearGap);
            default:
                return Interval + Truncate(Math.Pow(Increment, k));
        }
    }

    // Python's int() of a positive float; gaps beyond a long end the schedule.
    private static long Truncate(double value) => value >= long.MaxValue / 2 ? long.MaxValue / 2 : (long)Math.Floor(value);
}
