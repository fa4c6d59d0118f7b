using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.IO;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Tool.Rendering;
using LoQT.Training;

namespace LoQT.Tool.Commands;

/// <summary>
/// <c>loqt bench train</c>: pretrains the same model on the same data with the same seed and step count once per
/// method (full-rank, LoQT without quantization, LoQT), each in a fresh child process so peak memory does not mix, and
/// compares validation perplexity, training throughput and peak RSS with full-rank training.
/// </summary>
/// <remarks>
/// Defaults follow the LoQT paper's pretraining recipe (sebulo/LoQT scripts/pretraining): LoQT learning rate 0.01
/// against full-rank's 0.001 (the GaLore/LoQT papers' full-rank baseline), rank a quarter of the hidden size (the
/// 60m/350m/1b runs), α = 0.5, NF4 W and P with 5 error-compensation iterations, exponential schedule with growth 1.2,
/// 10% linear warmup then cosine to 0.1×, no gradient clipping, bf16 compute. The paper's first gap T = 100 over
/// 10k steps gives about 35 merges, and each merging step applies no update (0.35% of the steps). A run of a few hundred
/// steps cannot keep both the merge count and that small idle share; the default T = steps / 10 gives about ten merges
/// (3% idle steps). Sizes default to what trains a 9m model in about ten minutes per method on two cores.
/// </remarks>
internal static class BenchTrainCommand
{
    /// <summary>The methods compared by default, in the order they run.</summary>
    public static IReadOnlyList<string> DefaultMethods { get; } = ["full", "loqt-nq", "loqt"];

    /// <summary>The issue's goals: LoQT's perplexity within 5% of full-rank, and at least 80% of its throughput.</summary>
    private const double PerplexityGoal = 1.05;
    private const double ThroughputGoal = 0.8;

    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = $"Model shape: a preset ({string.Join(", ", LlamaPresets.Names)}) or a config.json file (20m is the next size up).", DefaultValueFactory = _ => "9m" };
        var data = new Option<string?>("--data") { Description = "Directory with train.jsonl and valid.jsonl. Default: shared/data/nlp-corpus beside the checkout (or under $LOQT_SHARED)." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer directory. Default: shared/fixtures/tokenizers/sp-bpe-32k beside the checkout (or under $LOQT_SHARED)." };
        var methods = new Option<string>("--methods") { Description = $"Comma-separated methods to compare ({string.Join(", ", LoqtMethodNames.All)}); ratios are to full, which always runs first.", DefaultValueFactory = _ => string.Join(",", DefaultMethods) };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps per method (800 x 2048 tokens: 0.8 epoch of nlp-corpus).", DefaultValueFactory = _ => 800 };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per micro-batch.", DefaultValueFactory = _ => 8 };
        var gradAccum = new Option<int>("--grad-accum") { Description = "Micro-batches per optimizer step.", DefaultValueFactory = _ => 1 };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 256 };
        var rank = new Option<int?>("--rank") { Description = "Rank of LoQT's adapters. Default: hidden size / 4, as the paper's runs." };
        var alpha = new Option<double>("--alpha") { Description = "Scaling α of the low-rank path.", DefaultValueFactory = _ => 0.5 };
        var updateInterval = new Option<int?>("--update-interval") { Description = "First gap T between merges. Default: steps / 10 (at least 5): about ten merges in the run." };
        var growth = new Option<double>("--interval-growth") { Description = "Growth ψ of the exponential merge schedule.", DefaultValueFactory = _ => 1.2 };
        var ecIterations = new Option<int>("--ec-iterations") { Description = "Error-compensation iterations.", DefaultValueFactory = _ => 5 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate of the low-rank methods (loqt, loqt-nq, lora, galore): the paper's LoQT rate.", DefaultValueFactory = _ => 0.01 };
        var lrFull = new Option<double>("--lr-full") { Description = "Peak learning rate of full-rank training: the GaLore/LoQT papers' full-rank baseline.", DefaultValueFactory = _ => 0.001 };
        var warmup = new Option<int?>("--warmup") { Description = "Linear warmup steps. Default: 10% of the steps." };
        var maxGradNorm = new Option<double>("--max-grad-norm") { Description = "Gradient clipping (global 2-norm); 0: off, as in the paper.", DefaultValueFactory = _ => 0.0 };
        var dtype = new Option<string>("--dtype") { Description = "Compute dtype: bf16 (the paper's) or fp32.", DefaultValueFactory = _ => "bf16" };
        dtype.AcceptOnlyFromAmong("bf16", "fp32");
        var evalLines = new Option<int>("--eval-lines") { Description = "Validation lines scored at the end (0: all of valid.jsonl).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Seed of initialization and data order (the same for every method).", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--output") { Description = "Directory for results.json, loss-curves.png and each method's run.", DefaultValueFactory = _ => "bench-train" };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON (as in results.json) instead of a table." };

        var command = new Command(
            "train",
            "Pretrain the same model with full-rank training, LoQT without quantization and LoQT (same data, steps and seed), " +
            "each in its own process, and compare validation perplexity, tokens/s and peak RSS with full-rank; writes " +
            "results.json and loss-curves.png.")
        {
            config, data, tokenizer, methods, steps, batchSize, gradAccum, seqLen, rank, alpha, updateInterval, growth, ecIterations,
            lr, lrFull, warmup, maxGradNorm, dtype, evalLines, seed, output, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            try
            {
                var settings = new BenchTrainSettings
                {
                    Config = parse.GetRequiredValue(config),
                    DataDirectory = parse.GetValue(data) ?? SharedPath("data", "nlp-corpus"),
                    TokenizerDirectory = parse.GetValue(tokenizer) ?? SharedPath("fixtures", "tokenizers", "sp-bpe-32k"),
                    Methods = ParseMethods(parse.GetRequiredValue(methods)),
                    Steps = parse.GetValue(steps),
                    BatchSize = parse.GetValue(batchSize),
                    GradientAccumulation = parse.GetValue(gradAccum),
                    SequenceLength = parse.GetValue(seqLen),
                    Rank = parse.GetValue(rank),
                    Alpha = parse.GetValue(alpha),
                    UpdateInterval = parse.GetValue(updateInterval),
                    IntervalGrowth = parse.GetValue(growth),
                    ErrorCompensationIterations = parse.GetValue(ecIterations),
                    LearningRate = parse.GetValue(lr),
                    FullLearningRate = parse.GetValue(lrFull),
                    WarmupSteps = parse.GetValue(warmup),
                    MaxGradNorm = parse.GetValue(maxGradNorm),
                    DType = parse.GetRequiredValue(dtype),
                    EvalLines = parse.GetValue(evalLines),
                    Seed = parse.GetValue(seed),
                    OutputDirectory = parse.GetRequiredValue(output),
                };
                var report = await RunAsync(settings.Resolve(), error, cancellationToken).ConfigureAwait(false);
                Print(report, parse.GetValue(json), parse.InvocationConfiguration.Output);
                error.WriteLine($"Wrote {Path.Combine(settings.OutputDirectory, ResultsFileName)} and {Path.Combine(settings.OutputDirectory, ChartFileName)}.");
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException)
            {
                error.WriteLine("error: " + CliErrorMessage.For(e));
                return 1;
            }
        });
        return command;
    }

    /// <summary>The results file in the output directory.</summary>
    public const string ResultsFileName = "results.json";

    /// <summary>The loss-curve chart in the output directory.</summary>
    public const string ChartFileName = "loss-curves.png";

    private static async Task<JsonObject> RunAsync(BenchTrainSettings s, TextWriter log, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(s.OutputDirectory);
        var valid = Path.Combine(s.DataDirectory, "valid.jsonl");
        if (s.EvalLines > 0)
        {
            var subset = Path.Combine(s.OutputDirectory, "valid-subset.jsonl");
            AtomicFile.WriteAllText(subset, string.Join('\n', File.ReadLines(valid).Take(s.EvalLines)) + "\n");
            valid = subset;
        }

        var runs = new List<JsonObject>();
        foreach (var method in s.Methods)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var runDirectory = Path.Combine(s.OutputDirectory, method);
            if (Directory.Exists(runDirectory))
            {
                Directory.Delete(runDirectory, recursive: true); // a fresh run, never a resume of an older one
            }

            log.WriteLine($"[{method}] training {s.Steps} steps …");
            var result = await RunChildAsync(s.PretrainArguments(method, Path.Combine(s.DataDirectory, "train.jsonl"), valid, runDirectory), method, log, cancellationToken).ConfigureAwait(false);
            runs.Add(MethodResult(method, result, Path.Combine(runDirectory, MetricsLog.FileName)));
        }

        AddRatios(runs);
        var report = new JsonObject
        {
            ["benchmark"] = "loqt bench train",
            ["config"] = s.Config,
            ["model"] = new JsonObject
            {
                ["hidden_size"] = s.Model.HiddenSize, ["intermediate_size"] = s.Model.IntermediateSize, ["layers"] = s.Model.NumHiddenLayers,
                ["vocab_size"] = s.Model.VocabSize,
            },
            ["data"] = s.DataDirectory,
            ["tokenizer"] = s.TokenizerDirectory,
            ["settings"] = s.ToJson(),
            ["machine"] = new JsonObject { ["processors"] = Environment.ProcessorCount, ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
            ["methods"] = new JsonArray([.. runs]),
            ["goals"] = Goals(runs),
        };

        AtomicFile.WriteAllText(Path.Combine(s.OutputDirectory, ResultsFileName), report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        PngCharts.SaveLines(
            Path.Combine(s.OutputDirectory, ChartFileName),
            $"{(LlamaPresets.IsPreset(s.Config) ? s.Config : Path.GetFileName(s.Config))} pretraining, {s.Steps} steps of {s.TokensPerStep} tokens ({s.DType})",
            "step",
            $"training loss (moving average of {SmoothingWindow(s.Steps)} steps)",
            runs.Select(r => LossSeries(r)).ToArray());
        return report;
    }

    private static async Task<JsonObject> RunChildAsync(IReadOnlyList<string> arguments, string method, TextWriter log, CancellationToken cancellationToken)
    {
        var (host, prefix) = ToolInvocation();
        var start = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in prefix.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }

        using var child = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {host}.");
        using var kill = cancellationToken.Register(() =>
        {
            try
            {
                child.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already exited.
            }
        });
        var stdout = child.StandardOutput.ReadToEndAsync(CancellationToken.None);
        string? line;
        while ((line = await child.StandardError.ReadLineAsync(CancellationToken.None).ConfigureAwait(false)) is not null)
        {
            if (line.Length > 0 && !line.StartsWith("loqt: libLibTorchSharp", StringComparison.Ordinal))
            {
                log.WriteLine($"[{method}] {line}");
            }
        }

        await child.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        var text = await stdout.ConfigureAwait(false);
        if (child.ExitCode != 0)
        {
            throw new InvalidOperationException($"The {method} run failed (exit code {child.ExitCode}); its messages are above.");
        }

        var last = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()
            ?? throw new InvalidDataException($"The {method} run printed no result.");
        return JsonNode.Parse(last)?.AsObject() ?? throw new InvalidDataException($"The {method} run printed '{last}', not a JSON result.");
    }

    /// <summary>How to run this tool again: the dotnet host and the tool's assembly (works for the global tool, dotnet run and tests).</summary>
    private static (string Host, IReadOnlyList<string> Prefix) ToolInvocation()
    {
        var assembly = typeof(BenchTrainCommand).Assembly.Location;
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return (current, ["exec", assembly]);
        }

        var hostPath = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
        {
            return (hostPath, ["exec", assembly]);
        }

        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        var fromRoot = string.IsNullOrEmpty(root) ? null : Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        return (fromRoot is not null && File.Exists(fromRoot) ? fromRoot : "dotnet", ["exec", assembly]);
    }

    private static JsonObject MethodResult(string method, JsonObject child, string metricsPath)
    {
        var records = MetricsLog.Read(metricsPath);
        var curve = new JsonObject
        {
            ["step"] = new JsonArray([.. records.Select(r => (JsonNode)r.GetProperty("step").GetInt64())]),
            ["loss"] = new JsonArray([.. records.Select(r => (JsonNode)r.GetProperty("loss").GetDouble())]),
        };

        var evalLoss = child["eval_loss"]?.GetValue<double>() ?? throw new InvalidDataException($"The {method} run reported no validation loss.");
        return new JsonObject
        {
            ["method"] = method,
            ["eval_loss"] = evalLoss,
            ["eval_perplexity"] = Math.Exp(evalLoss),
            ["train_loss"] = child["loss"]?.GetValue<double>(),
            ["tokens_per_second"] = child["tokens_per_second"]?.GetValue<double>(),
            ["peak_rss_bytes"] = child["peak_rss_bytes"]?.GetValue<long>(),
            ["timings_seconds"] = child["timings"]?.DeepClone(),
            ["loss_curve"] = curve,
        };
    }

    private static void AddRatios(List<JsonObject> runs)
    {
        var full = runs.FirstOrDefault(r => (string?)r["method"] == "full");
        if (full is null)
        {
            return;
        }

        foreach (var run in runs)
        {
            run["ratio_to_full"] = new JsonObject
            {
                ["eval_perplexity"] = Ratio(run, full, "eval_perplexity"),
                ["tokens_per_second"] = Ratio(run, full, "tokens_per_second"),
                ["peak_rss_bytes"] = Ratio(run, full, "peak_rss_bytes"),
            };
        }
    }

    private static double Ratio(JsonObject run, JsonObject full, string key) => Number(run[key]!) / Number(full[key]!);

    private static double Number(JsonNode node) => node.AsValue().TryGetValue<double>(out var value) ? value : node.GetValue<long>();

    private static JsonObject Goals(List<JsonObject> runs)
    {
        var loqt = runs.FirstOrDefault(r => (string?)r["method"] == "loqt");
        var ratios = loqt?["ratio_to_full"];
        var perplexity = ratios?["eval_perplexity"]?.GetValue<double>();
        var throughput = ratios?["tokens_per_second"]?.GetValue<double>();
        return new JsonObject
        {
            ["loqt_perplexity_ratio_at_most"] = PerplexityGoal,
            ["loqt_tokens_per_second_ratio_at_least"] = ThroughputGoal,
            ["loqt_perplexity_ratio"] = perplexity,
            ["loqt_tokens_per_second_ratio"] = throughput,
            ["perplexity_met"] = perplexity is { } p ? p <= PerplexityGoal : null,
            ["tokens_per_second_met"] = throughput is { } t ? t >= ThroughputGoal : null,
        };
    }

    private static int SmoothingWindow(int steps) => Math.Max(1, steps / 30);

    private static ChartSeries LossSeries(JsonObject run)
    {
        var curve = run["loss_curve"]!;
        var points = curve["step"]!.AsArray().Zip(curve["loss"]!.AsArray(), (step, loss) => (Step: Number(step!), Loss: Number(loss!))).ToArray();
        var window = SmoothingWindow(points.Length);
        var smoothed = new double[points.Length];
        for (var i = 0; i < points.Length; i++)
        {
            var from = Math.Max(0, i - window + 1);
            smoothed[i] = points[from..(i + 1)].Average(p => p.Loss);
        }

        return new ChartSeries((string)run["method"]!, points.Select(p => p.Step).ToArray(), smoothed);
    }

    private static void Print(JsonObject report, bool json, TextWriter output)
    {
        if (json)
        {
            output.WriteLine(report.ToJsonString());
            return;
        }

        var settings = report["settings"]!;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{report["config"]}: {settings["steps"]} steps x {settings["tokens_per_step"]} tokens, {settings["dtype"]}, seed {settings["seed"]}"));
        output.WriteLine($"{"method",-10} {"eval ppl",10} {"x full",7} {"tokens/s",10} {"x full",7} {"peak RSS",11} {"x full",7}");
        foreach (var run in report["methods"]!.AsArray())
        {
            var ratio = run!["ratio_to_full"];
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(string)run["method"]!,-10} {Number(run["eval_perplexity"]!),10:0.00} {Format(ratio?["eval_perplexity"]),7} " +
                $"{Number(run["tokens_per_second"]!),10:0} {Format(ratio?["tokens_per_second"]),7} " +
                $"{ProcessMemory.Format(run["peak_rss_bytes"]!.GetValue<long>()),11} {Format(ratio?["peak_rss_bytes"]),7}"));
        }

        var goals = report["goals"]!;
        if (goals["loqt_perplexity_ratio"] is not null)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"goals: loqt perplexity <= {PerplexityGoal:0.00}x full: {Met(goals["perplexity_met"])}; loqt tokens/s >= {ThroughputGoal:0.0}x full: {Met(goals["tokens_per_second_met"])}"));
        }

        static string Format(JsonNode? ratio) => ratio is null ? "-" : ratio.GetValue<double>().ToString("0.000", CultureInfo.InvariantCulture);

        static string Met(JsonNode? met) => met?.GetValue<bool>() == true ? "yes" : "no";
    }

    private static IReadOnlyList<string> ParseMethods(string text)
    {
        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(n => LoqtMethodNames.Parse(n, "--methods").ToName())
            .Distinct(StringComparer.Ordinal)
            .ToList();
        if (names.Count == 0)
        {
            throw new ArgumentException("--methods must name at least one method.", "methods");
        }

        // full runs first: every ratio is to it.
        names.Sort((a, b) => (a == "full" ? 0 : 1).CompareTo(b == "full" ? 0 : 1));
        return names;
    }

    /// <summary>A folder under the shared data beside the checkout: $LOQT_SHARED, else the nearest <c>shared/</c> above the current directory.</summary>
    private static string SharedPath(params string[] parts)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("LOQT_SHARED");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return Path.Combine([fromEnvironment, .. parts]);
        }

        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine([dir.FullName, "shared", .. parts]);
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new ArgumentException($"No shared/{string.Join('/', parts)} above {Environment.CurrentDirectory}; pass it explicitly or set LOQT_SHARED.");
    }
}
