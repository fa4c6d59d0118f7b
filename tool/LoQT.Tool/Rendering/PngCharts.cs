using LoQT.IO;
using ScottPlot;

namespace LoQT.Tool.Rendering;

/// <summary>One line of a line chart: a label and its points.</summary>
/// <param name="Label">The legend text (a method, a run).</param>
/// <param name="X">The x values (steps, say).</param>
/// <param name="Y">The y values, as many as <paramref name="X"/>.</param>
internal sealed record ChartSeries(string Label, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>One part of every bar in a stacked bar chart (weights, optimizer state, …): its value in each bar.</summary>
/// <param name="Label">The legend text.</param>
/// <param name="Values">The part's size in each bar, in the order of the bars.</param>
internal sealed record ChartStack(string Label, IReadOnlyList<double> Values);

/// <summary>
/// The PNG charts of the benchmarks and the demo (ScottPlot): loss curves per method, and memory per component
/// stacked per method like the paper's Figure 1. Files are written atomically.
/// </summary>
internal static class PngCharts
{
    /// <summary>Default size in pixels: legible on a README, small on disk.</summary>
    public const int Width = 900;

    /// <summary>Default height in pixels.</summary>
    public const int Height = 560;

    /// <summary>Writes a line chart with one line per series and a legend.</summary>
    /// <exception cref="ArgumentException">A series has different numbers of x and y values, or none.</exception>
    public static void SaveLines(string path, string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, bool logY = false)
    {
        ArgumentNullException.ThrowIfNull(series);
        using var plot = new Plot();
        foreach (var line in series)
        {
            if (line.X.Count != line.Y.Count || line.X.Count == 0)
            {
                throw new ArgumentException($"Chart series '{line.Label}' has {line.X.Count} x values and {line.Y.Count} y values; it needs the same number, at least one.", nameof(series));
            }

            var ys = logY ? line.Y.Select(Math.Log10).ToArray() : line.Y.ToArray();
            var scatter = plot.Add.ScatterLine(line.X.ToArray(), ys);
            scatter.LegendText = line.Label;
            scatter.LineWidth = 2;
        }

        if (logY)
        {
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = v => Math.Pow(10, v).ToString("G4", System.Globalization.CultureInfo.InvariantCulture) };
        }

        Label(plot, title, xLabel, yLabel);
        Save(plot, path);
    }

    /// <summary>Writes a chart of horizontal bars, one per name, each stacked from the given parts, with a legend of the parts.</summary>
    /// <exception cref="ArgumentException">A part has a value count other than the number of bars, or a value is negative.</exception>
    public static void SaveStackedBars(string path, string title, string valueLabel, IReadOnlyList<string> bars, IReadOnlyList<ChartStack> stacks)
    {
        ArgumentNullException.ThrowIfNull(bars);
        ArgumentNullException.ThrowIfNull(stacks);
        using var plot = new Plot();
        var bases = new double[bars.Count];
        IPalette palette = stacks.Count <= 10 ? new ScottPlot.Palettes.Category10() : new ScottPlot.Palettes.Category20();
        for (var s = 0; s < stacks.Count; s++)
        {
            var stack = stacks[s];
            if (stack.Values.Count != bars.Count || stack.Values.Any(v => v < 0 || !double.IsFinite(v)))
            {
                throw new ArgumentException($"Chart part '{stack.Label}' needs {bars.Count} finite non-negative values (one per bar); got {stack.Values.Count}.", nameof(stacks));
            }

            var color = palette.GetColor(s);
            var parts = new List<Bar>();
            for (var b = 0; b < bars.Count; b++)
            {
                parts.Add(new Bar { Position = bars.Count - 1 - b, ValueBase = bases[b], Value = bases[b] + stack.Values[b], FillColor = color, Orientation = Orientation.Horizontal });
                bases[b] += stack.Values[b];
            }

            plot.Add.Bars(parts);
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = stack.Label, FillColor = color });
        }

        plot.Axes.Left.SetTicks(Enumerable.Range(0, bars.Count).Select(i => (double)(bars.Count - 1 - i)).ToArray(), bars.ToArray());
        plot.Axes.Margins(left: 0, right: 0.05);
        Label(plot, title, valueLabel, string.Empty);
        if (stacks.Count > 1)
        {
            // Many parts: the legend beside the bars, not over them.
            plot.ShowLegend(Edge.Right);
        }

        Save(plot, path);
    }

    private static void Label(Plot plot, string title, string xLabel, string yLabel)
    {
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperRight);
    }

    private static void Save(Plot plot, string path)
    {
        var bytes = plot.GetImageBytes(Width, Height, ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, bytes);
    }
}
