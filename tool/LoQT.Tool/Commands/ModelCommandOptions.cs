using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LoQT.Models.Llama;
using LoQT.Quantization;
using LoQT.SafeTensors;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Tool.Commands;

/// <summary>Options shared by the commands that run a model (eval, generate): compute dtype and quantization, and loading with a note on stderr.</summary>
internal static class ModelCommandOptions
{
    public static Option<string> DType()
    {
        var option = new Option<string>("--dtype")
        {
            Description = "Compute dtype: fp32 or bf16 (bf16 is faster on CPUs with AMX, and halves the memory of unquantized weights).",
            DefaultValueFactory = _ => "fp32",
        };
        option.AcceptOnlyFromAmong("fp32", "bf16");
        return option;
    }

    public static Option<bool> Quantize() => new("--quantize")
    {
        Description = "Quantize the decoder's linear weights to NF4 while loading (default: keep the checkpoint as it is: NF4 stays NF4, full precision stays full).",
    };

    public static Option<bool> NoQuantize() => new("--no-quantize")
    {
        Description = "Run an NF4 (bitsandbytes-format) checkpoint with its weights dequantized to the compute dtype.",
    };

    /// <summary><c>true</c>/<c>false</c> for --quantize/--no-quantize, <c>null</c> for neither.</summary>
    /// <exception cref="ArgumentException">Both were given.</exception>
    public static bool? QuantizeChoice(ParseResult parse, Option<bool> quantize, Option<bool> noQuantize) =>
        (parse.GetValue(quantize), parse.GetValue(noQuantize)) switch
        {
            (true, true) => throw new ArgumentException("--quantize and --no-quantize contradict each other; give one"),
            (true, false) => true,
            (false, true) => false,
            _ => null,
        };

    /// <summary>The folder a model argument means: a training output directory stands for its newest checkpoint.</summary>
    public static string ResolveCheckpoint(string directory) => CheckpointDirectory.Resolve(directory) ?? directory;

    /// <summary>Loads a model folder, reporting progress and then size, time and peak memory on <paramref name="log"/>.</summary>
    public static LlamaForCausalLM Load(string directory, string dtype, bool? quantize, TextWriter log, CancellationToken cancellationToken)
    {
        // A LoQT checkpoint: rebuild the LoQT layers with their adapters, as trained.
        if (LoqtCheckpoint.IsLoqtModel(directory))
        {
            var (loqtModel, _, _) = LoqtCheckpoint.Load(directory, trainable: false);
            log.WriteLine($"loaded LoQT checkpoint {directory}: {loqtModel.Config.NumHiddenLayers} layers; peak RSS {ProcessMemory.Format(ProcessMemory.PeakBytes)}");
            return loqtModel;
        }

        var quantized = quantize ?? IsNf4Checkpoint(directory);
        var options = new LlamaLoadOptions
        {
            ComputeDType = dtype == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32,
            LinearFactory = quantized ? new Nf4LinearFactory() : new DenseLinearFactory(),
        };
        var timer = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        var progress = new Progress(p =>
        {
            if (timer.Elapsed - lastReport > TimeSpan.FromSeconds(5))
            {
                lastReport = timer.Elapsed;
                log.WriteLine($"loading: {p.Done}/{p.Total} tensors");
            }
        });
        var model = LlamaForCausalLM.Load(directory, options, progress, cancellationToken);
        log.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"loaded {directory}: {model.Config.NumHiddenLayers} layers, {(quantized ? "NF4" : dtype)} linear weights, " +
            $"{ProcessMemory.Format(model.WeightBytes)} of weights in {timer.Elapsed.TotalSeconds:0.0} s; peak RSS {ProcessMemory.Format(ProcessMemory.PeakBytes)}"));
        return model;
    }

    private static bool IsNf4Checkpoint(string directory)
    {
        using var checkpoint = SafeTensorsCheckpoint.Open(directory);
        return checkpoint.TensorNames.Any(n => n.EndsWith(BnbNf4Format.QuantStateSuffix, StringComparison.Ordinal));
    }

    // Reports synchronously on the loading thread (System.Progress would post to the thread pool).
    private sealed class Progress(Action<LlamaLoadProgress> report) : IProgress<LlamaLoadProgress>
    {
        public void Report(LlamaLoadProgress value) => report(value);
    }
}
