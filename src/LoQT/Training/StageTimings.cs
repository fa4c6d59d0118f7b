using System.Diagnostics;
using LoQT.Loqt;

namespace LoQT.Training;

/// <summary>A thread-safe <see cref="ITimingSink"/> that adds up the time and the number of calls of each stage.</summary>
public sealed class StageTimings : ITimingSink
{
    private readonly long[] ticks = new long[Enum.GetValues<TimedStage>().Length];
    private readonly long[] counts = new long[Enum.GetValues<TimedStage>().Length];

    /// <inheritdoc/>
    public void Record(TimedStage stage, long elapsedTicks)
    {
        Interlocked.Add(ref ticks[(int)stage], elapsedTicks);
        Interlocked.Increment(ref counts[(int)stage]);
    }

    /// <summary>Seconds recorded for <paramref name="stage"/> so far.</summary>
    public double Seconds(TimedStage stage) => (double)Interlocked.Read(ref ticks[(int)stage]) / Stopwatch.Frequency;

    /// <summary>How many times <paramref name="stage"/> was recorded so far.</summary>
    public long Count(TimedStage stage) => Interlocked.Read(ref counts[(int)stage]);

    /// <summary>Seconds per stage, every stage present (0 when it never ran), under its snake_case name.</summary>
    public IReadOnlyDictionary<string, double> Snapshot() =>
        Enum.GetValues<TimedStage>().ToDictionary(Name, Seconds, StringComparer.Ordinal);

    /// <summary>The snake_case name of a stage, as benchmarks write it: <c>dequantize</c>, <c>full_gradient</c>, ….</summary>
    public static string Name(TimedStage stage) => stage switch
    {
        TimedStage.Forward => "forward",
        TimedStage.Backward => "backward",
        TimedStage.Dequantize => "dequantize",
        TimedStage.FullGradient => "full_gradient",
        TimedStage.Svd => "svd",
        TimedStage.ErrorCompensation => "error_compensation",
        TimedStage.Optimizer => "optimizer",
        _ => throw new ArgumentOutOfRangeException(nameof(stage), stage, "Unknown stage."),
    };
}
