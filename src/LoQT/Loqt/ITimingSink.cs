using System.Diagnostics;

namespace LoQT.Loqt;

/// <summary>
/// The stages of a training step that the trainer, layers and optimizers time (see <see cref="ITimingSink"/>). Forward
/// and backward are whole passes; the others are measured inside them (or in the optimizer step) and overlap them.
/// </summary>
public enum TimedStage
{
    /// <summary>The forward pass and loss of a micro-batch (wall time; includes its dequantization).</summary>
    Forward,

    /// <summary>The backward pass of a micro-batch (wall time; includes its dequantization, per-layer updates and re-initializations).</summary>
    Backward,

    /// <summary>NF4 → compute dtype of W and P for the matrix products of forward and backward.</summary>
    Dequantize,

    /// <summary>Accumulating a layer's full weight gradient G = Σ gᵀ·x at a re-initialization step.</summary>
    FullGradient,

    /// <summary>The SVD (full or randomized) that takes a new projection P from G.</summary>
    Svd,

    /// <summary>Merging B into W, quantizing P and the error-compensation iterations of a re-initialization.</summary>
    ErrorCompensation,

    /// <summary>Optimizer updates of parameters (inside backward with per-layer updates, or at the step).</summary>
    Optimizer,
}

/// <summary>
/// Receives how long each timed stage took, as layers and optimizers run. Given to a <see cref="LoqtLinearFactory"/>
/// (and an optimizer) only when a benchmark wants the breakdown; without one nothing is timed.
/// </summary>
/// <remarks>Implementations must be thread-safe: backward may run on another thread than forward.</remarks>
public interface ITimingSink
{
    /// <summary>Adds <paramref name="elapsedTicks"/> (<see cref="Stopwatch"/> ticks) to <paramref name="stage"/>.</summary>
    /// <param name="stage">What ran.</param>
    /// <param name="elapsedTicks">For how long, in <see cref="Stopwatch.Frequency"/> ticks per second.</param>
    void Record(TimedStage stage, long elapsedTicks);
}

/// <summary>
/// Times one stage into a sink: <c>using var _ = StageClock.Measure(sink, TimedStage.Svd);</c>. A struct, so with no
/// sink it costs a null check and allocates nothing.
/// </summary>
public readonly struct StageClock : IDisposable
{
    private readonly ITimingSink? sink;
    private readonly TimedStage stage;
    private readonly long start;

    private StageClock(ITimingSink sink, TimedStage stage)
    {
        this.sink = sink;
        this.stage = stage;
        start = Stopwatch.GetTimestamp();
    }

    /// <summary>Starts timing <paramref name="stage"/>, or nothing when <paramref name="sink"/> is null.</summary>
    /// <param name="sink">Where the time goes; null to time nothing.</param>
    /// <param name="stage">The stage.</param>
    public static StageClock Measure(ITimingSink? sink, TimedStage stage) => sink is null ? default : new StageClock(sink, stage);

    /// <summary>Records the time since <see cref="Measure"/>.</summary>
    public void Dispose() => sink?.Record(stage, Stopwatch.GetTimestamp() - start);
}
