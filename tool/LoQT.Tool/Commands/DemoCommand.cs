using System.CommandLine;
using LoQT.Native;
using LoQT.Tool.Demo;
using TorchSharp;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt demo</c>: the offline demo, LoQT and full-rank pretraining of a tiny Llama side by side on arithmetic.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output")
        {
            Description = $"Folder for everything the demo writes: {DemoPipeline.Layout}. A rerun replaces an earlier demo's output; any other non-empty folder is refused.",
            DefaultValueFactory = _ => "loqt-demo",
        };
        var quick = new Option<bool>("--quick")
        {
            Description = "Run the whole pipeline in seconds on a much smaller model, corpus and step count (a smoke check: it does not learn arithmetic).",
        };
        var steps = new Option<long?>("--steps") { Description = $"Optimizer steps of each run (default {DemoSettings.Default.Steps}; {DemoSettings.Quick.Steps} with --quick)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the held-out split, the initial weights and the data order (the same for both methods).", DefaultValueFactory = _ => 0 };
        var rank = new Option<int?>("--rank") { Description = $"LoQT's rank r (default {DemoSettings.Default.Rank}; {DemoSettings.Quick.Rank} with --quick)." };
        var lr = new Option<double?>("--lr") { Description = $"Peak learning rate of both runs (default {DemoSettings.Default.LearningRate}; cosine decay after warmup)." };
        var interval = new Option<int?>("--update-interval") { Description = $"LoQT's first gap between merges, in steps (default {DemoSettings.Default.UpdateInterval}; the k-th gap after it is that plus floor({DemoSettings.Default.IntervalGrowth}^k))." };
        var threads = new Option<int?>("--threads")
        {
            Description = "Threads libtorch computes with (default: its own choice, one per core). This model's operations are small: " +
                "on a machine busy with other work, 1 is several times faster than competing for every core.",
        };
        threads.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is < 1)
            {
                result.AddError("--threads must be at least 1.");
            }
        });
        var json = new Option<bool>("--json") { Description = "Print the summary as one JSON line instead of the table." };

        var command = new Command("demo",
            "Offline demo: make an arithmetic corpus with a held-out split, pretrain a tiny Llama with LoQT and with full-rank training " +
            "(same data, seed and steps), compare held-out perplexity and exact-match accuracy, export the LoQT model as NF4, reload it and " +
            "answer a few problems, and write a loss chart (PNG) and a summary (JSON, markdown). A few minutes on two CPU cores; needs no network.")
        {
            output, quick, steps, seed, rank, lr, interval, threads, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var baseline = parse.GetValue(quick) ? DemoSettings.Quick : DemoSettings.Default;
            var settings = baseline with
            {
                Steps = parse.GetValue(steps) ?? baseline.Steps,
                Seed = parse.GetValue(seed),
                Rank = parse.GetValue(rank) ?? baseline.Rank,
                LearningRate = parse.GetValue(lr) ?? baseline.LearningRate,
                UpdateInterval = parse.GetValue(interval) ?? baseline.UpdateInterval,
            };
            try
            {
                if (parse.GetValue(threads) is { } count)
                {
                    LibTorch.EnsureLoaded();
                    torch.set_num_threads(count); // for this process: the demo is its only work
                }

                var directory = Path.GetFullPath(parse.GetRequiredValue(output));
                var summary = await new DemoPipeline(settings, directory, error).RunAsync(cancellationToken);
                await stdout.WriteLineAsync(parse.GetValue(json) ? summary.ToJson(indented: false) : summary.ToMarkdown());
                return 0;
            }
            catch (OperationCanceledException e)
            {
                await error.WriteLineAsync("demo: " + e.Message);
                return 130;
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or NotSupportedException or InvalidOperationException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync("error: " + (Environment.GetEnvironmentVariable("LOQT_DEBUG") == "1" ? e.ToString() : e.Message));
                return 1;
            }
        });
        return command;
    }
}
