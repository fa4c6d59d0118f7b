using System.CommandLine;
using System.Globalization;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Tool.Rendering;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tool.Commands;

/// <summary>The options <c>loqt adapt</c> and <c>loqt pretrain</c> share, and running a training from them.</summary>
internal sealed class TrainingCommandOptions
{
    private static readonly TrainingOptions Defaults = new();

    public Option<string> Dataset { get; } = new("--dataset") { Description = "Training data: .txt, .jsonl (\"text\", \"input_ids\" or \"prompt\"+\"completion\"), or a directory of them.", Required = true };
    public Option<string> Output { get; } = new("--output") { Description = "Output directory: checkpoints (checkpoint-NNNNNNN, latest.json) and metrics.jsonl.", Required = true };
    public Option<string> Task { get; } = Choice("--task", "causal-lm", "What to train: causal-lm (next-token loss on all text) or completion (loss on completions of prompt/completion data only).", "causal-lm", "completion");
    public Option<string> Method { get; } = Choice("--method", "loqt", "loqt (NF4 W and P, trainable B, merges), loqt-nq (no quantization), full, lora or galore (baselines).", [.. LoqtMethodNames.All]);
    public Option<int> Rank { get; } = new("--rank") { Description = "Rank r of the low-rank adapters (and of GaLore's projection).", DefaultValueFactory = _ => 128 };
    public Option<double> Alpha { get; } = new("--alpha") { Description = "Scaling α of the low-rank path (the reference's lora_alpha).", DefaultValueFactory = _ => Defaults.Layers.Alpha };
    public Option<int> UpdateInterval { get; } = new("--update-interval") { Description = "First gap T between merges / new projections, in optimizer steps.", DefaultValueFactory = _ => 100 };
    public Option<double> IntervalGrowth { get; } = new("--interval-growth") { Description = "Growth ψ of the gaps: exponential: next = current + T + floor(ψ^k); linear: the increment.", DefaultValueFactory = _ => 1.2 };
    public Option<int?> MaxGap { get; } = new("--max-gap") { Description = "Upper bound on the gap between merges (optional)." };
    public Option<string> Schedule { get; } = Choice("--schedule", "exponential", "Merge schedule: static (every T), linear or exponential.", "static", "linear", "exponential");
    public Option<int> EcIterations { get; } = new("--ec-iterations") { Description = "Error-compensation iterations k when choosing B (0: B = 0, no compensation).", DefaultValueFactory = _ => Defaults.Layers.ErrorCompensationIterations };
    public Option<bool> NoQuantizeW { get; } = new("--no-quantize-w") { Description = "Keep W in full precision (ablation)." };
    public Option<bool> NoQuantizeP { get; } = new("--no-quantize-p") { Description = "Keep P in full precision (\"LoQT without P quantization\")." };
    public Option<bool> DoubleQuant { get; } = new("--double-quant") { Description = "Double-quantize the NF4 absmax values." };
    public Option<string> Svd { get; } = Choice("--svd", "full", "How P is taken from the gradient: full SVD (the reference) or randomized (range finder with oversampling and power iterations).", "full", "randomized");
    public Option<string> Optimizer { get; } = Choice("--optimizer", "adamw", "adamw (fp32 moments) or adamw8bit (blockwise 8-bit moments).", "adamw", "adamw8bit");
    public Option<bool> PerLayer { get; } = new("--per-layer") { Description = "Update each parameter inside backward as soon as its gradient is ready (no full set of gradients in memory)." };
    public Option<double> LearningRate { get; } = new("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => Defaults.LearningRate };
    public Option<long> Warmup { get; } = new("--warmup") { Description = "Linear warmup steps.", DefaultValueFactory = _ => 0 };
    public Option<string> LrSchedule { get; } = Choice("--lr-schedule", "cosine", "Learning-rate schedule after warmup.", "cosine", "linear", "constant");
    public Option<double> WeightDecay { get; } = new("--weight-decay") { Description = "Decoupled weight decay (matrices only).", DefaultValueFactory = _ => 0.0 };
    public Option<double> MaxGradNorm { get; } = new("--max-grad-norm") { Description = "Clip gradients to this global 2-norm (0: off; the reference's pretraining scripts do not clip). With --per-layer each parameter's gradient is clipped on its own.", DefaultValueFactory = _ => Defaults.MaxGradNorm };
    public Option<long> Steps { get; } = new("--steps") { Description = "Optimizer steps to train.", DefaultValueFactory = _ => Defaults.Steps };
    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Sequences per micro-batch.", DefaultValueFactory = _ => Defaults.BatchSize };
    public Option<int> GradAccum { get; } = new("--grad-accum") { Description = "Micro-batches per optimizer step.", DefaultValueFactory = _ => 1 };
    public Option<int> SeqLen { get; } = new("--seq-len") { Description = "Tokens per sequence.", DefaultValueFactory = _ => Defaults.SequenceLength };
    public Option<bool> NoPack { get; } = new("--no-pack") { Description = "Train each line as its own padded sequence instead of packing documents into blocks." };
    public Option<string> DType { get; } = Choice("--dtype", "fp32", "Compute dtype: fp32 or bf16.", "fp32", "bf16");
    public Option<string?> EvalDataset { get; } = new("--eval-dataset") { Description = "Validation data: perplexity at --eval-every and at the end." };
    public Option<long> EvalEvery { get; } = new("--eval-every") { Description = "Evaluate every N steps (0: at the end only).", DefaultValueFactory = _ => 0 };
    public Option<long> SaveEvery { get; } = new("--save-every") { Description = "Save a checkpoint every N steps (0: at the end; Ctrl-C also saves).", DefaultValueFactory = _ => 0 };
    public Option<string?> Resume { get; } = new("--resume") { Description = "Continue a run from its checkpoint (or output directory), bit for bit on CPU; its saved options are used, --steps may extend it." };
    public Option<long> Seed { get; } = new("--seed") { Description = "Seed of data order and of the layers' random draws.", DefaultValueFactory = _ => 0 };
    public Option<string> Device { get; } = Choice("--device", "cpu", "Where to train: cpu or cuda (needs the cuda backend, LoqtTorchBackend=cuda).", "cpu", "cuda");
    public Option<bool> Json { get; } = new("--json") { Description = "Print the result as one JSON line last." };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[]
        {
            Dataset, Output, Task, Method, Rank, Alpha, UpdateInterval, IntervalGrowth, MaxGap, Schedule, EcIterations, NoQuantizeW, NoQuantizeP,
            DoubleQuant, Svd, Optimizer, PerLayer, LearningRate, Warmup, LrSchedule, WeightDecay, MaxGradNorm, Steps, BatchSize, GradAccum,
            SeqLen, NoPack, DType, EvalDataset, EvalEvery, SaveEvery, Resume, Seed, Device, Json,
        })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The training options the command line asks for.</summary>
    /// <exception cref="ArgumentException">A value is out of range (named).</exception>
    public TrainingOptions ToOptions(ParseResult parse)
    {
        var method = LoqtMethodNames.Parse(parse.GetRequiredValue(Method), "--method");
        var dtype = parse.GetRequiredValue(DType) == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var interval = parse.GetValue(UpdateInterval);
        var growth = parse.GetValue(IntervalGrowth);
        var maxGap = parse.GetValue(MaxGap);
        var schedule = parse.GetRequiredValue(Schedule) switch
        {
            "static" => MergeSchedule.Static(interval),
            "linear" => MergeSchedule.Linear(interval, growth, maxGap),
            _ => MergeSchedule.Exponential(interval, growth, maxGap),
        };
        var options = new TrainingOptions
        {
            Method = method,
            Layers = new LoqtOptions
            {
                Rank = parse.GetValue(Rank),
                Alpha = parse.GetValue(Alpha),
                QuantizeWeight = !parse.GetValue(NoQuantizeW),
                QuantizeProjection = !parse.GetValue(NoQuantizeP),
                ErrorCompensationIterations = parse.GetValue(EcIterations),
                Svd = parse.GetRequiredValue(Svd) == "randomized" ? SvdOptions.Randomized() : SvdOptions.Full,
                DoubleQuantization = parse.GetValue(DoubleQuant),
                ComputeDType = dtype,
            },
            Schedule = schedule,
            Optimizer = parse.GetRequiredValue(Optimizer) == "adamw8bit" ? OptimizerKind.AdamW8bit : OptimizerKind.AdamW,
            PerLayerUpdates = parse.GetValue(PerLayer),
            LearningRate = parse.GetValue(LearningRate),
            WarmupSteps = parse.GetValue(Warmup),
            LearningRateSchedule = LearningRateSchedule.ParseKind(parse.GetRequiredValue(LrSchedule), "--lr-schedule"),
            WeightDecay = parse.GetValue(WeightDecay),
            MaxGradNorm = parse.GetValue(MaxGradNorm),
            Steps = parse.GetValue(Steps),
            BatchSize = parse.GetValue(BatchSize),
            GradientAccumulation = parse.GetValue(GradAccum),
            SequenceLength = parse.GetValue(SeqLen),
            Task = parse.GetRequiredValue(Task) == "completion" ? TrainingTask.Completion : TrainingTask.CausalLm,
            NoPacking = parse.GetValue(NoPack),
            EvalEvery = parse.GetValue(EvalEvery),
            SaveEvery = parse.GetValue(SaveEvery),
            Seed = parse.GetValue(Seed),
        };
        options.Validate();
        return options;
    }

    public Device? ToDevice(ParseResult parse) => parse.GetRequiredValue(Device) == "cuda" ? CUDA : null;

    /// <summary>Runs a training and prints its outcome; the exit code.</summary>
    public async Task<int> RunAsync(ParseResult parse, Func<TrainingOptions, Task<TrainingRun>> makeRun, CancellationToken cancellationToken)
    {
        var output = parse.InvocationConfiguration.Output;
        var error = parse.InvocationConfiguration.Error;
        try
        {
            var options = ToOptions(parse);
            var run = await makeRun(options).ConfigureAwait(false);
            run = run with
            {
                Dataset = parse.GetRequiredValue(Dataset),
                EvalDataset = parse.GetValue(EvalDataset),
                OutputDirectory = parse.GetRequiredValue(Output),
                ResumeFrom = parse.GetValue(Resume),
                Options = options,
                Device = ToDevice(parse),
            };
            var result = await Trainer.RunAsync(run, new TrainingProgressBar(error), error, cancellationToken).ConfigureAwait(false);
            error.WriteLine();
            error.WriteLine(result.Interrupted
                ? $"Interrupted at step {result.Steps}; saved {result.Checkpoint}. Continue with --resume {run.OutputDirectory}."
                : $"Trained {result.Steps} steps; checkpoint {result.Checkpoint}.");
            error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"final loss {result.TrainLoss:0.0000}{(result.EvalLoss is { } e ? $", eval loss {e:0.0000} (perplexity {Math.Exp(e):0.00})" : "")}, " +
                $"{result.TokensPerSecond:0} tokens/s, peak RSS {ProcessMemory.Format(result.PeakResidentBytes)}"));
            error.WriteLine("time: " + string.Join(", ", result.Timings.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Key} {t.Value:0.0} s"))));
            if (parse.GetValue(Json))
            {
                output.WriteLine(System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["steps"] = result.Steps, ["loss"] = result.TrainLoss, ["eval_loss"] = result.EvalLoss,
                    ["eval_perplexity"] = result.EvalLoss is { } l ? Math.Exp(l) : null, ["checkpoint"] = result.Checkpoint,
                    ["interrupted"] = result.Interrupted, ["tokens_per_second"] = result.TokensPerSecond, ["peak_rss_bytes"] = result.PeakResidentBytes,
                    ["timings"] = result.Timings,
                }));
            }
            else
            {
                output.WriteLine(result.Checkpoint);
            }

            return result.Interrupted ? 130 : 0;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or NotSupportedException or InvalidOperationException or UnauthorizedAccessException)
        {
            error.WriteLine("error: " + CliErrorMessage.For(e));
            return 1;
        }
    }

    private static Option<string> Choice(string name, string defaultValue, string description, params string[] values)
    {
        var option = new Option<string>(name) { Description = description + $" Default: {defaultValue}.", DefaultValueFactory = _ => defaultValue };
        option.AcceptOnlyFromAmong(values);
        return option;
    }
}
