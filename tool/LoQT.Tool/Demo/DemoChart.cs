using LoQT.Tool.Rendering;
using LoQT.Training;

namespace LoQT.Tool.Demo;

/// <summary>The demo's loss curves: per method the training loss (smoothed) and the held-out loss, from each run's <c>metrics.jsonl</c>.</summary>
internal static class DemoChart
{
    /// <summary>Points averaged into one on the training curve: per-step losses of small batches are too noisy to compare by eye.</summary>
    private const int SmoothingPoints = 40;

    /// <summary>Draws the chart of the runs (method name, run output directory) into <paramref name="path"/>.</summary>
    public static void Save(string path, IReadOnlyList<(string Method, string RunDirectory)> runs)
    {
        var series = new List<ChartSeries>();
        foreach (var (method, directory) in runs)
        {
            var records = MetricsLog.Read(Path.Combine(directory, MetricsLog.FileName));
            var steps = records.Select(r => r.GetProperty("step").GetDouble()).ToArray();
            var losses = records.Select(r => r.GetProperty("loss").GetDouble()).ToArray();
            var window = Math.Max(1, steps.Length / SmoothingPoints);
            var smoothedSteps = new List<double>();
            var smoothedLosses = new List<double>();
            for (var start = 0; start < steps.Length; start += window)
            {
                var count = Math.Min(window, steps.Length - start);
                smoothedSteps.Add(steps[start + count - 1]);
                smoothedLosses.Add(losses.Skip(start).Take(count).Average());
            }

            series.Add(new ChartSeries($"{method}: train (mean of {window} steps)", smoothedSteps, smoothedLosses));
            var evals = records.Where(r => r.TryGetProperty("eval_loss", out _)).ToArray();
            if (evals.Length > 0)
            {
                series.Add(new ChartSeries($"{method}: held-out", evals.Select(r => r.GetProperty("step").GetDouble()).ToArray(),
                    evals.Select(r => r.GetProperty("eval_loss").GetDouble()).ToArray()));
            }
        }

        PngCharts.SaveLines(path, "Loss on the answers: LoQT vs full-rank", "step", "cross-entropy (nats, log scale)", series, logY: true);
    }
}
