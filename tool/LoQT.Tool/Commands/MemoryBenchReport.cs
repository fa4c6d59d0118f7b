using System.Globalization;
using System.Text;
using System.Text.Json;
using LoQT.IO;
using LoQT.Loqt;
using LoQT.Tool.Rendering;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tool.Commands;

/// <summary>What <c>loqt bench memory</c> measured in one step.</summary>
/// <param name="Step">The step (1-based, as in metrics.jsonl).</param>
/// <param name="Reinitialized">Whether it was a re-initialization step.</param>
/// <param name="Seconds">Wall time of the step.</param>
/// <param name="Loss">Its training loss.</param>
/// <param name="ResidentBytes">RSS when it ended.</param>
/// <param name="PeakResidentBytes">Peak RSS during it (since the previous step ended).</param>
/// <param name="OptimizerStateBytes">Optimizer state held when it ended.</param>
/// <param name="Tensors">The model's tensors by component when it ended.</param>
/// <param name="Stages">Seconds per timed stage during it (<see cref="StageTimings.Name"/>).</param>
internal sealed record MemoryBenchStep(
    long Step,
    bool Reinitialized,
    double Seconds,
    double Loss,
    long ResidentBytes,
    long PeakResidentBytes,
    long OptimizerStateBytes,
    ModelTensorBytes? Tensors,
    IReadOnlyDictionary<string, double> Stages);

/// <summary>
/// The report of <c>loqt bench memory</c>: the planner's prediction, what was measured after loading and in every
/// step, and the time per stage. Saved as <c>report.json</c> after every step (so a run that dies leaves what it had),
/// and drawn as <c>memory.png</c> (planner and measured memory per component, next to full and GaLore, like the
/// paper's Figure 1) and <c>time.png</c> (seconds per step by stage).
/// </summary>
internal sealed class MemoryBenchReport
{
    private static readonly string[] ExclusiveStages = ["dequantize", "full_gradient", "svd", "error_compensation", "optimizer"];

    private readonly MemoryBenchSetup setup;
    private readonly IReadOnlyList<MemoryPlan> plans;
    private readonly IReadOnlyList<MemoryPlan>? fullDepthPlans;
    private readonly List<MemoryBenchStep> steps = [];
    private readonly string startLoad = LoadAverage();
    private readonly DateTimeOffset started = DateTimeOffset.UtcNow;
    private readonly long baselineBytes;
    private double loadSeconds;
    private long loadedBytes;
    private long loadPeakBytes;
    private ModelTensorBytes? loadedTensors;
    private IReadOnlyDictionary<string, double>? trainerTimings;
    private IReadOnlyDictionary<string, double>? stageTotals;
    private double totalSeconds;
    private string? endLoad;
    private long afterBytes;

    public MemoryBenchReport(MemoryBenchSetup setup, long baselineBytes)
    {
        this.setup = setup;
        this.baselineBytes = baselineBytes;
        plans = setup.Plans();
        fullDepthPlans = setup.Config.NumHiddenLayers == setup.FullDepthLayers ? null : setup.FullDepthPlans();
    }

    /// <summary>The report file.</summary>
    public string JsonPath => Path.Combine(setup.OutputDirectory, "report.json");

    /// <summary>The memory chart.</summary>
    public string MemoryChartPath => Path.Combine(setup.OutputDirectory, "memory.png");

    /// <summary>The time chart.</summary>
    public string TimeChartPath => Path.Combine(setup.OutputDirectory, "time.png");

    /// <summary>The planner's prediction for the method as run.</summary>
    public MemoryPlan Predicted => plans[0];

    /// <summary>The highest RSS measured: while loading or in any step.</summary>
    public long MeasuredPeakBytes => Math.Max(loadPeakBytes, steps.Count == 0 ? 0 : steps.Max(s => s.PeakResidentBytes));

    /// <summary>The largest optimizer state seen at the end of a step.</summary>
    public long OptimizerStateBytes => steps.Count == 0 ? 0 : steps.Max(s => s.OptimizerStateBytes);

    /// <summary>The steps measured so far.</summary>
    public IReadOnlyList<MemoryBenchStep> Steps => steps;

    public void RecordLoad(double seconds, long residentBytes, long peakBytes, ModelTensorBytes tensors)
    {
        loadSeconds = seconds;
        loadedBytes = residentBytes;
        loadPeakBytes = peakBytes;
        loadedTensors = tensors;
    }

    public void RecordStep(MemoryBenchStep step) => steps.Add(step);

    public void Complete(IReadOnlyDictionary<string, double> trainer, IReadOnlyDictionary<string, double> stages, double seconds, long residentAfterBytes)
    {
        afterBytes = residentAfterBytes;
        trainerTimings = trainer;
        stageTotals = stages;
        totalSeconds = seconds;
        endLoad = LoadAverage();
    }

    /// <summary>Writes <c>report.json</c> (atomically).</summary>
    public void Save() => AtomicFile.WriteAllText(JsonPath, ToJson() + "\n");

    /// <summary>Draws <c>memory.png</c> and <c>time.png</c>.</summary>
    public void SaveCharts()
    {
        const double gib = 1024.0 * 1024 * 1024;
        var tensors = LastTensors();
        var measuredParts = new (string Key, long Bytes)[]
        {
            ("weights", tensors?.Weights ?? 0), ("projections", tensors?.Projections ?? 0), ("adapters", tensors?.Adapters ?? 0),
            ("non_quantized", tensors?.NonQuantized ?? 0), ("optimizer_state", OptimizerStateBytes),
        };
        var rest = Math.Max(0, MeasuredPeakBytes - measuredParts.Sum(p => p.Bytes));
        var bars = new List<string> { "measured " + Name(Predicted) };
        bars.AddRange(plans.Select(p => "planned " + Name(p)));
        var keys = Predicted.Breakdown.Parts.Select(p => p.Key).ToList();
        var stacks = keys.Select(key => new ChartStack(
            Label(key),
            [measuredParts.FirstOrDefault(m => m.Key == key).Bytes / gib, .. plans.Select(p => p.Breakdown.Parts.Single(x => x.Key == key).Value / gib)])).ToList();
        stacks.Add(new ChartStack("measured rest of peak RSS", [rest / gib, .. plans.Select(_ => 0.0)]));
        PngCharts.SaveStackedBars(MemoryChartPath, "Peak memory: " + setup.DescribeModel(), "GiB; " + setup.DescribeRun(), bars, stacks);

        if (steps.Count > 0)
        {
            var stepBars = steps.Select(s => $"step {s.Step}{(s.Reinitialized ? " (re-init)" : "")}").ToList();
            var timeStacks = ExclusiveStages.Select(stage => new ChartStack(stage.Replace('_', ' '), steps.Select(s => s.Stages[stage]).ToList())).ToList();
            timeStacks.Add(new ChartStack("other compute", steps.Select(s => Math.Max(0, s.Seconds - ExclusiveStages.Sum(stage => s.Stages[stage]))).ToList()));
            PngCharts.SaveStackedBars(TimeChartPath, "Seconds per step: " + setup.DescribeModel(), "seconds; " + setup.DescribeRun(), stepBars, timeStacks);
        }
    }

    /// <summary>A few lines for people: measured peak against the prediction, and where the time went.</summary>
    public void WriteSummary(TextWriter output)
    {
        output.WriteLine(setup.Describe());
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"peak RSS {ProcessMemory.Format(MeasuredPeakBytes)}, planner {ProcessMemory.Format(Predicted.Total)} ({100.0 * (Predicted.Total - MeasuredPeakBytes) / Math.Max(1, MeasuredPeakBytes):+0.0;-0.0}% of measured)"));
        if (fullDepthPlans is not null)
        {
            output.WriteLine($"planner at full depth ({setup.FullDepthLayers} layers): {ProcessMemory.Format(fullDepthPlans[0].Total)}");
        }

        foreach (var (kind, seconds) in SecondsPerStep())
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{kind} step: {seconds:0.00} s"));
        }

        if (stageTotals is not null)
        {
            output.WriteLine("time: " + string.Join(", ", stageTotals.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key} {s.Value:0.00} s"))));
        }

        output.WriteLine(JsonPath);
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("benchmark", "memory");
            w.WriteString("status", trainerTimings is null ? "running" : "complete");
            w.WriteString("started", started.ToString("O", CultureInfo.InvariantCulture));
            w.WriteString("description", setup.Describe());
            WriteRun(w);
            WriteMachine(w);
            w.WriteStartObject("predicted");
            WritePlan(w, Predicted);
            w.WriteStartArray("compared");
            foreach (var plan in plans.Skip(1))
            {
                w.WriteStartObject();
                WritePlan(w, plan);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
            if (fullDepthPlans is not null)
            {
                w.WriteStartObject("predicted_full_depth");
                w.WriteNumber("layers", setup.FullDepthLayers);
                WritePlan(w, fullDepthPlans[0]);
                w.WriteEndObject();
            }

            WriteMeasured(w);
            WriteSteps(w);
            WriteTimings(w);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private void WriteRun(Utf8JsonWriter w)
    {
        var o = setup.Options;
        w.WriteStartObject("run");
        w.WriteString("config", setup.ConfigName);
        w.WriteNumber("layers", setup.Config.NumHiddenLayers);
        w.WriteNumber("full_depth_layers", setup.FullDepthLayers);
        w.WriteNumber("parameters", Predicted.TotalParameters);
        w.WriteString("method", o.Method.ToName());
        w.WriteNumber("rank", o.Layers.Rank);
        w.WriteNumber("seq_len", o.SequenceLength);
        w.WriteNumber("batch_size", o.BatchSize);
        w.WriteString("optimizer", o.Optimizer == OptimizerKind.AdamW8bit ? "adamw8bit" : "adamw");
        w.WriteBoolean("per_layer", o.PerLayerUpdates);
        w.WriteString("dtype", o.Layers.ComputeDType == ScalarType.Float32 ? "fp32" : "bf16");
        w.WriteString("svd", o.Layers.Svd.Kind == SvdKind.Randomized ? "randomized" : "full");
        w.WriteNumber("ec_iterations", o.Layers.ErrorCompensationIterations);
        w.WriteNumber("steps", o.Steps);
        w.WriteNumber("update_interval", o.Schedule.Interval);
        w.WriteString("data", "random tokens");
        w.WriteEndObject();
    }

    private void WriteMachine(Utf8JsonWriter w)
    {
        w.WriteStartObject("machine");
        w.WriteNumber("processors", Environment.ProcessorCount);
        w.WriteNumber("torch_threads", get_num_threads());
        w.WriteNumber("memory_bytes", GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
        w.WriteString("os", System.Runtime.InteropServices.RuntimeInformation.OSDescription);
        w.WriteString("load_average_at_start", startLoad);
        if (endLoad is not null)
        {
            w.WriteString("load_average_at_end", endLoad);
        }

        w.WriteEndObject();
    }

    private static void WritePlan(Utf8JsonWriter w, MemoryPlan plan)
    {
        w.WriteString("method", TrainingMethodNames.Format(plan.Options.Method));
        w.WriteNumber("total_bytes", plan.Total);
        w.WriteNumber("steady_bytes", plan.Breakdown.SteadyTotal);
        w.WriteStartObject("bytes");
        foreach (var (key, bytes) in plan.Breakdown.Parts)
        {
            w.WriteNumber(key, bytes);
        }

        w.WriteEndObject();
    }

    private void WriteMeasured(Utf8JsonWriter w)
    {
        w.WriteStartObject("measured");
        w.WriteNumber("peak_rss_bytes", MeasuredPeakBytes);
        w.WriteNumber("peak_over_predicted", Math.Round((double)MeasuredPeakBytes / Predicted.Total, 4));
        w.WriteNumber("baseline_rss_bytes", baselineBytes);
        w.WriteNumber("load_seconds", Math.Round(loadSeconds, 3));
        w.WriteNumber("rss_after_load_bytes", loadedBytes);
        w.WriteNumber("load_peak_rss_bytes", loadPeakBytes);
        if (steps.FirstOrDefault(s => s.OptimizerStateBytes > 0) is { } first)
        {
            w.WriteNumber("rss_after_optimizer_state_bytes", first.ResidentBytes);
        }

        if (steps.Where(s => s.Reinitialized).Select(s => (long?)s.PeakResidentBytes).Max() is { } reinitPeak)
        {
            w.WriteNumber("reinitialization_step_peak_rss_bytes", reinitPeak);
        }

        if (steps.Where(s => !s.Reinitialized).Select(s => (long?)s.PeakResidentBytes).Max() is { } updatePeak)
        {
            w.WriteNumber("update_step_peak_rss_bytes", updatePeak);
        }

        // What the tensors hold, by the planner's components (exact storage, not RSS), at the end of the run.
        var tensors = LastTensors();
        w.WriteStartObject("tensor_bytes");
        if (tensors is not null)
        {
            w.WriteNumber("weights", tensors.Weights);
            w.WriteNumber("projections", tensors.Projections);
            w.WriteNumber("adapters", tensors.Adapters);
            w.WriteNumber("non_quantized", tensors.NonQuantized);
        }

        w.WriteNumber("optimizer_state", OptimizerStateBytes);
        w.WriteEndObject();

        // Between steps: what the process holds besides those tensors (runtime, libtorch code and caches, heap), and how
        // far each kind of step rose above the RSS it started from (activations, gradients, update scratch, transients).
        if (steps.LastOrDefault() is { Tensors: not null } last)
        {
            w.WriteNumber("resting_rss_bytes", last.ResidentBytes);
            w.WriteNumber("resting_overhead_bytes", last.ResidentBytes - last.Tensors.Total - last.OptimizerStateBytes);
        }

        if (afterBytes > 0)
        {
            w.WriteNumber("rss_after_model_freed_bytes", afterBytes);
        }

        var risesByKind = new SortedDictionary<string, long>(StringComparer.Ordinal);
        for (var i = 1; i < steps.Count; i++)
        {
            var rise = steps[i].PeakResidentBytes - steps[i - 1].ResidentBytes;
            var key = steps[i].Reinitialized ? "reinitialization_step_rise_bytes" : "update_step_rise_bytes";
            risesByKind[key] = Math.Max(risesByKind.GetValueOrDefault(key), rise);
        }

        foreach (var (key, rise) in risesByKind)
        {
            w.WriteNumber(key, rise);
        }
        if (loadedTensors is not null)
        {
            w.WriteNumber("projections_before_first_reinitialization_bytes", loadedTensors.Projections);
        }

        w.WriteEndObject();
    }

    private void WriteSteps(Utf8JsonWriter w)
    {
        w.WriteStartArray("steps");
        foreach (var s in steps)
        {
            w.WriteStartObject();
            w.WriteNumber("step", s.Step);
            w.WriteBoolean("reinitialized", s.Reinitialized);
            w.WriteNumber("seconds", Math.Round(s.Seconds, 4));
            w.WriteNumber("loss", double.IsFinite(s.Loss) ? Math.Round(s.Loss, 6) : 0);
            w.WriteNumber("rss_bytes", s.ResidentBytes);
            w.WriteNumber("peak_rss_bytes", s.PeakResidentBytes);
            w.WriteNumber("optimizer_state_bytes", s.OptimizerStateBytes);
            w.WriteStartObject("seconds_by_stage");
            foreach (var (stage, seconds) in s.Stages)
            {
                w.WriteNumber(stage, Math.Round(seconds, 4));
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private void WriteTimings(Utf8JsonWriter w)
    {
        w.WriteStartObject("seconds_per_step");
        foreach (var (kind, seconds) in SecondsPerStep())
        {
            w.WriteNumber(kind, Math.Round(seconds, 4));
        }

        w.WriteEndObject();
        if (stageTotals is not null)
        {
            w.WriteStartObject("seconds_by_stage");
            foreach (var (stage, seconds) in stageTotals)
            {
                w.WriteNumber(stage, Math.Round(seconds, 4));
            }

            w.WriteEndObject();
        }

        if (trainerTimings is not null)
        {
            w.WriteStartObject("trainer_seconds");
            foreach (var (phase, seconds) in trainerTimings)
            {
                w.WriteNumber(phase, Math.Round(seconds, 4));
            }

            w.WriteEndObject();
            w.WriteNumber("total_seconds", Math.Round(totalSeconds, 3));
        }
    }

    private IEnumerable<(string Kind, double Seconds)> SecondsPerStep()
    {
        var updates = steps.Where(s => !s.Reinitialized).ToList();
        var reinitializations = steps.Where(s => s.Reinitialized).ToList();
        if (updates.Count > 0)
        {
            yield return ("update", updates.Average(s => s.Seconds));
        }

        if (reinitializations.Count > 0)
        {
            yield return ("reinitialization", reinitializations.Average(s => s.Seconds));
        }
    }

    private ModelTensorBytes? LastTensors() => steps.LastOrDefault(s => s.Tensors is not null)?.Tensors ?? loadedTensors;

    private static string Name(MemoryPlan plan) => TrainingMethodNames.Format(plan.Options.Method);

    private static string Label(string key) => key switch
    {
        "weights" => "weights W",
        "projections" => "projections P",
        "adapters" => "adapters B",
        "non_quantized" => "embeddings, norms, lm_head",
        "optimizer_state" => "optimizer state",
        "update_transient" => "update-step transient",
        _ => key.Replace('_', ' '),
    };

    // The machine's load while the benchmark ran: its numbers are only as good as the machine was quiet.
    private static string LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
