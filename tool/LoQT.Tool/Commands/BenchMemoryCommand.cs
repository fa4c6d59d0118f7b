using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LoQT.Data;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tool.Commands;

/// <summary>
/// <c>loqt bench memory</c>: runs real LoQT training steps (with re-initializations) on random tokens, a model of a
/// preset's shape initialized layer by layer straight into NF4, and reports measured peak RSS next to the planner's
/// prediction, per component where it can be measured, and where the time of a step goes.
/// </summary>
internal static class BenchMemoryCommand
{
    public static Command Create()
    {
        var shape = new RunShapeOptions();
        var steps = new Option<int>("--steps") { Description = "Training steps to run, re-initialization steps included (the first step is one).", DefaultValueFactory = _ => 4, HelpName = "N" };
        var interval = new Option<int>("--update-interval")
        {
            Description = "Re-initialize (merge B into W, new P by SVD, error compensation) every this many steps, from step 0; steps in between are optimizer updates.",
            DefaultValueFactory = _ => 2,
            HelpName = "T",
        };
        var layers = new Option<int?>("--layers")
        {
            Description = "Keep only this many decoder layers of the shape (same widths): a layer-reduced model whose measurement the planner extrapolates to full depth.",
            HelpName = "N",
        };
        var ecIterations = new Option<int>("--ec-iterations") { Description = "Error-compensation iterations at each re-initialization.", DefaultValueFactory = _ => new LoqtOptions().ErrorCompensationIterations, HelpName = "K" };
        var output = new Option<string>("--output") { Description = "Folder for report.json (rewritten after every step), metrics.jsonl, memory.png and time.png.", DefaultValueFactory = _ => "bench-memory", HelpName = "DIR" };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON on stdout instead of a summary." };

        var command = new Command(
            "memory",
            "Run real LoQT training steps, with re-initializations, on random tokens and measure peak RSS against the memory planner's " +
            "prediction, the tensors per component, and seconds per step split into forward, backward, dequantization, SVD, " +
            "error compensation and optimizer. Writes JSON and PNG charts.")
        {
            steps, interval, layers, ecIterations, output, json,
        };
        foreach (var option in shape.All.Reverse())
        {
            command.Options.Insert(0, option);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            MemoryBenchSetup setup;
            try
            {
                setup = MemoryBenchSetup.Create(new MemoryBenchRequest(
                    parse.GetValue(shape.Config)!, parse.GetValue(steps), parse.GetValue(interval), parse.GetValue(layers), parse.GetValue(shape.Rank),
                    parse.GetValue(shape.SeqLen), parse.GetValue(shape.BatchSize), parse.GetValue(shape.Method)!,
                    RunShapeOptions.Choice(parse.GetValue(shape.Optimizer)!, "--optimizer", RunShapeOptions.Optimizers), parse.GetValue(shape.PerLayer),
                    RunShapeOptions.Choice(parse.GetValue(shape.Dtype)!, "--dtype", RunShapeOptions.Dtypes),
                    RunShapeOptions.Choice(parse.GetValue(shape.Svd)!, "--svd", RunShapeOptions.SvdKinds),
                    parse.GetValue(ecIterations), parse.GetValue(output)!));
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException)
            {
                error.WriteLine("error: " + RunShapeOptions.MessageOf(e));
                return e is ArgumentException ? LoqtCli.UsageError : 1;
            }

            try
            {
                var report = await RunAsync(setup, error, cancellationToken).ConfigureAwait(false);
                if (parse.GetValue(json))
                {
                    parse.InvocationConfiguration.Output.WriteLine(report.ToJson());
                }
                else
                {
                    report.WriteSummary(parse.InvocationConfiguration.Output);
                }

                return 0;
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                error.WriteLine("error: " + RunShapeOptions.MessageOf(e));
                return 1;
            }
        });
        return command;
    }

    /// <summary>Trains, measuring after the model is built and after every step; writes the report as it goes, then the charts.</summary>
    internal static async Task<MemoryBenchReport> RunAsync(MemoryBenchSetup setup, TextWriter log, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(setup.OutputDirectory);
        var report = new MemoryBenchReport(setup, ProcessMemory.CurrentBytes);
        var timings = new StageTimings();
        var data = TokenDataset.RandomTokens(setup.Config.VocabSize, setup.Options.BatchSize * (int)setup.Options.Steps, setup.Options.SequenceLength, seed: 0);
        LlamaForCausalLM? model = null;
        AdamWOptimizer? optimizer = null;
        ProcessMemory.ResetPeak();
        var clock = Stopwatch.StartNew();
        var stepStart = timings.Snapshot();
        var stepClock = Stopwatch.StartNew();

        log.WriteLine($"Initializing {setup.Describe()} layer by layer into {setup.Options.Method.ToName()} layers …");
        var run = new TrainingRun
        {
            Config = setup.Config,
            Dataset = data.Source,
            TrainData = data,
            OutputDirectory = setup.OutputDirectory,
            Options = setup.Options,
            WriteCheckpoints = false,
            Timings = timings,
            ModelReady = (m, o) =>
            {
                (model, optimizer) = (m, o);
                report.RecordLoad(clock.Elapsed.TotalSeconds, ProcessMemory.CurrentBytes, ProcessMemory.PeakBytes, ModelTensorBytes.Of(m));
                report.Save();
                log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"built in {clock.Elapsed.TotalSeconds:0.0} s; RSS {ProcessMemory.Format(ProcessMemory.CurrentBytes)} (peak {ProcessMemory.Format(ProcessMemory.PeakBytes)})"));
                ProcessMemory.ResetPeak();
                stepStart = timings.Snapshot();
                stepClock.Restart();
            },
        };

        var progress = new SynchronousProgress<TrainingStepReport>(step =>
        {
            var stages = timings.Snapshot();
            var measured = new MemoryBenchStep(
                step.Step,
                step.Reinitialized,
                stepClock.Elapsed.TotalSeconds,
                step.Loss,
                step.ResidentBytes,
                // The kernel folds RSS into VmHWM lazily, so a reading of RSS taken first can exceed it by a few pages.
                Math.Max(ProcessMemory.PeakBytes, step.ResidentBytes),
                optimizer?.StateBytes ?? 0,
                model is null ? null : ModelTensorBytes.Of(model),
                stages.ToDictionary(s => s.Key, s => s.Value - stepStart[s.Key], StringComparer.Ordinal));
            report.RecordStep(measured);
            report.Save();
            var stageText = string.Join(", ", measured.Stages.Where(s => s.Value > 0).Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key} {s.Value:0.00} s")));
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"step {measured.Step} of {setup.Options.Steps}{(measured.Reinitialized ? " (re-initialization)" : "")}: {measured.Seconds:0.00} s, loss {measured.Loss:0.000}, " +
                $"RSS {ProcessMemory.Format(measured.ResidentBytes)}, peak {ProcessMemory.Format(measured.PeakResidentBytes)}; {stageText}"));
            ProcessMemory.ResetPeak();
            stepStart = stages;
            stepClock.Restart();
        });

        var result = await Trainer.RunAsync(run, progress, log, cancellationToken).ConfigureAwait(false);
        model = null;
        optimizer = null;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        report.Complete(result.Timings, timings.Snapshot(), clock.Elapsed.TotalSeconds, ProcessMemory.CurrentBytes);
        report.Save();
        report.SaveCharts();
        return report;
    }

    /// <summary>Calls the handler on the reporting thread, so that it measures memory at the moment the step ends.</summary>
    private sealed class SynchronousProgress<T>(Action<T> handler) : IProgress<T>
    {
        public void Report(T value) => handler(value);
    }
}

/// <summary>The values of <c>loqt bench memory</c>'s options, as typed.</summary>
internal sealed record MemoryBenchRequest(
    string Config,
    int Steps,
    int UpdateInterval,
    int? Layers,
    int? Rank,
    int SequenceLength,
    int BatchSize,
    string Method,
    string Optimizer,
    bool PerLayer,
    string Dtype,
    string Svd,
    int ErrorCompensationIterations,
    string OutputDirectory);

/// <summary>A benchmark run resolved from its request: the model shape, the training options and the planner's options.</summary>
internal sealed record MemoryBenchSetup(
    string ConfigName,
    LlamaConfig Config,
    int FullDepthLayers,
    TrainingOptions Options,
    MemoryPlanOptions PlanOptions,
    string OutputDirectory)
{
    /// <summary>Checks and resolves the request.</summary>
    /// <exception cref="ArgumentException">An option is out of range (named).</exception>
    /// <exception cref="InvalidDataException">The config cannot be read.</exception>
    public static MemoryBenchSetup Create(MemoryBenchRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var json = LlamaPresets.ResolveConfigJson(request.Config);
        var full = LlamaConfig.Parse(json, request.Config);
        if (request.Layers is { } layers && (layers < 1 || layers > full.NumHiddenLayers))
        {
            throw new ArgumentException($"--layers must be between 1 and the shape's {full.NumHiddenLayers} layers (got {layers}).");
        }

        if (request.Steps < 1)
        {
            throw new ArgumentException($"--steps must be at least 1 (got {request.Steps}).");
        }

        if (request.UpdateInterval < 1)
        {
            throw new ArgumentException($"--update-interval must be at least 1 (got {request.UpdateInterval}).");
        }

        var config = request.Layers is { } n ? full with { NumHiddenLayers = n } : full;
        var trainingMethod = TrainingMethodNames.Parse(request.Method);
        var plan = new MemoryPlanOptions
        {
            Method = trainingMethod,
            Rank = request.Rank,
            SequenceLength = request.SequenceLength,
            BatchSize = request.BatchSize,
            Optimizer = request.Optimizer == "adamw8bit" ? OptimizerKind.AdamW8bit : OptimizerKind.AdamW,
            PerLayerUpdates = request.PerLayer,
            Dtype = request.Dtype == "fp32" ? ComputeDtype.Float32 : ComputeDtype.BFloat16,
            Svd = request.Svd == "randomized" ? SvdOptions.Randomized() : SvdOptions.Full,
            ErrorCompensationIterations = request.ErrorCompensationIterations,
            Device = DeviceKind.Cpu,
        };

        // The planner validates rank and length against the shape and resolves the default rank.
        plan = new MemoryPlanner().Plan(config.ToJson(), plan, request.Config).Options;
        var options = new TrainingOptions
        {
            Method = (LoqtMethod)(int)trainingMethod,
            Layers = new LoqtOptions
            {
                Rank = plan.Rank!.Value,
                ErrorCompensationIterations = request.ErrorCompensationIterations,
                Svd = plan.Svd,
                ComputeDType = request.Dtype == "fp32" ? ScalarType.Float32 : ScalarType.BFloat16,
            },
            Schedule = MergeSchedule.Static(request.UpdateInterval),
            Optimizer = plan.Optimizer,
            PerLayerUpdates = request.PerLayer,
            LearningRate = 1e-3,
            LearningRateSchedule = LearningRateScheduleKind.Constant,
            Steps = request.Steps,
            BatchSize = request.BatchSize,
            SequenceLength = request.SequenceLength,
        };
        options.Validate();
        options.ValidateFor(config);
        return new MemoryBenchSetup(request.Config, config, full.NumHiddenLayers, options, plan, Path.GetFullPath(request.OutputDirectory));
    }

    /// <summary>The planner's prediction for the model as run (layer-reduced when asked), next to full and GaLore.</summary>
    public IReadOnlyList<MemoryPlan> Plans() => PlansFor(Config);

    /// <summary>The planner's prediction for the shape at its full depth (differs from <see cref="Plans"/> only with <c>--layers</c>).</summary>
    public IReadOnlyList<MemoryPlan> FullDepthPlans() => PlansFor(Config with { NumHiddenLayers = FullDepthLayers });

    /// <summary>E.g. <c>7b (2 of 32 layers), loqt rank 1024, seq 256 x batch 1, adamw8bit, per-layer, bf16, randomized SVD</c>.</summary>
    public string Describe() => DescribeModel() + ", " + DescribeRun();

    /// <summary>E.g. <c>7b (2 of 32 layers), loqt rank 1024</c>.</summary>
    public string DescribeModel()
    {
        var depth = Config.NumHiddenLayers == FullDepthLayers ? "" : $" ({Config.NumHiddenLayers} of {FullDepthLayers} layers)";
        return $"{ConfigName}{depth}, {Options.Method.ToName()} rank {Options.Layers.Rank}";
    }

    /// <summary>E.g. <c>seq 256 x batch 1, adamw8bit, per-layer, bf16, randomized SVD</c>.</summary>
    public string DescribeRun() =>
        $"seq {Options.SequenceLength} x batch {Options.BatchSize}, " +
        $"{(Options.Optimizer == OptimizerKind.AdamW8bit ? "adamw8bit" : "adamw")}{(Options.PerLayerUpdates ? ", per-layer" : "")}, " +
        $"{(Options.Layers.ComputeDType == ScalarType.Float32 ? "fp32" : "bf16")}, {Options.Layers.Svd.Kind.ToString().ToLowerInvariant()} SVD";

    private List<MemoryPlan> PlansFor(LlamaConfig config)
    {
        var planner = new MemoryPlanner();
        var json = config.ToJson();
        return MemoryCommand.ComparedMethods(PlanOptions.Method).Select(m => planner.Plan(json, PlanOptions with { Method = m }, ConfigName)).ToList();
    }
}
