using System.Diagnostics;
using System.Globalization;
using LoQT.Data;
using LoQT.Export;
using LoQT.IO;
using LoQT.Loqt;
using LoQT.Models.Llama;
using LoQT.Tool.Commands;
using LoQT.Tool.Rendering;
using LoQT.Training;

namespace LoQT.Tool.Demo;

/// <summary>
/// The offline demo, step by step: make an arithmetic corpus, pretrain the same tiny Llama with LoQT and with
/// full-rank training (same data, seed and steps), score both on the held-out split, export the LoQT model as NF4
/// and reload it from disk, then draw the loss curves and write the summary. Progress goes to <paramref name="log"/>.
/// </summary>
/// <param name="settings">What to run.</param>
/// <param name="outputDirectory">Where everything goes (see <see cref="Layout"/>).</param>
/// <param name="log">Progress (stderr in the tool).</param>
internal sealed class DemoPipeline(DemoSettings settings, string outputDirectory, TextWriter log)
{
    /// <summary>Marks a folder as a demo's output, so a rerun may replace what an earlier one wrote there.</summary>
    public const string MarkerFileName = ".loqt-demo";

    /// <summary>The summary files.</summary>
    public const string SummaryJsonFileName = "summary.json";

    /// <summary>The markdown summary.</summary>
    public const string SummaryMarkdownFileName = "summary.md";

    /// <summary>The loss-curve chart.</summary>
    public const string ChartFileName = "loss.png";

    private const int TotalSteps = 6;

    private static readonly LoqtMethod[] Methods = [LoqtMethod.Loqt, LoqtMethod.Full];

    /// <summary>The folders and files of a demo output directory.</summary>
    public static readonly string Layout =
        "data/ (corpus and tokenizer), runs/loqt and runs/full (checkpoints, metrics.jsonl), export/ (the LoQT model merged into bitsandbytes NF4), loss.png, summary.json, summary.md";

    /// <summary>Runs the whole demo.</summary>
    /// <exception cref="ArgumentException">A setting is out of range (named as on the command line), before anything is written.</exception>
    /// <exception cref="IOException">The output folder holds something other than an earlier demo's output.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (a training run saves its checkpoint first).</exception>
    public async Task<DemoSummary> RunAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        settings.Validate();
        PrepareOutputDirectory();

        Step(1, $"corpus: every a+b and a-b with a, b < {settings.OperandBound}, {settings.HeldOutFraction:P0} held out");
        var corpus = ArithmeticCorpus.Generate(settings.OperandBound, settings.HeldOutFraction, settings.Seed);
        var tokenizerDirectory = Path.Combine(outputDirectory, "data", "tokenizer");
        ArithmeticCorpus.WriteCharacterTokenizer(tokenizerDirectory);
        var (train, valid) = corpus.WriteCompletionJsonl(Path.Combine(outputDirectory, "data"));
        var problems = corpus.HeldOut.Take(settings.AccuracyProblems).Select(p => new ExactMatchItem(p.Prompt, p.Answer)).ToArray();
        log.WriteLine($"      {corpus.Train.Count} training problems, {corpus.HeldOut.Count} held out; accuracy is scored on {problems.Length} of them");

        var results = new List<DemoMethodResult>();
        var runs = new List<(string Method, string RunDirectory)>();
        foreach (var method in Methods)
        {
            var name = method.ToName();
            var runDirectory = Path.Combine(outputDirectory, "runs", name);
            Step(results.Count + 2, $"pretraining with {Describe(method)}: {settings.Steps} steps of {settings.BatchSize} problems");
            var (training, seconds) = await TrainAsync(method, tokenizerDirectory, train, valid, runDirectory, cancellationToken).ConfigureAwait(false);
            log.WriteLine($"      scoring {name} on the held-out split");
            // The demo's runs write checkpoints (TrainingRun.WriteCheckpoints is left on), so there is always one.
            var checkpoint = training.Checkpoint ?? throw new InvalidOperationException($"the {name} run wrote no checkpoint");
            var (scores, trainable) = await ScoreCheckpointAsync(checkpoint, valid, problems, cancellationToken).ConfigureAwait(false);
            results.Add(new DemoMethodResult(name, training, checkpoint, seconds, trainable, WeightBytesOnDisk(checkpoint), scores));
            runs.Add((name, runDirectory));
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"      {name}: held-out perplexity {scores.HeldOutPerplexity:0.000}, accuracy {scores.Accuracy.Accuracy:P1}, {seconds:0} s"));
        }

        Step(4, "exporting the LoQT model as NF4 and reloading it from disk");
        var exported = await ExportNf4Async(results.Single(r => r.Method == LoqtMethod.Loqt.ToName()).Checkpoint, cancellationToken).ConfigureAwait(false);
        var export = await ReloadExportAsync(exported, valid, problems, cancellationToken).ConfigureAwait(false);

        Step(5, "drawing the loss curves");
        var chart = Path.Combine(outputDirectory, ChartFileName);
        DemoChart.Save(chart, runs);

        Step(6, "writing the summary");
        // Full-rank training trains every parameter, so its count is the model's size.
        var parameters = results.Single(r => r.Method == LoqtMethod.Full.ToName()).TrainableParameters;
        var summary = new DemoSummary(settings, corpus.Train.Count, corpus.HeldOut.Count, parameters, results, export, chart, clock.Elapsed.TotalSeconds);
        AtomicFile.WriteAllText(Path.Combine(outputDirectory, SummaryJsonFileName), summary.ToJson(indented: true) + "\n");
        AtomicFile.WriteAllText(Path.Combine(outputDirectory, SummaryMarkdownFileName), summary.ToMarkdown());
        log.WriteLine($"demo: done in {clock.Elapsed.TotalSeconds:0} s; everything is in {outputDirectory}");
        return summary;
    }

    /// <summary>
    /// The export step: merges B into W, re-quantizes and writes the trained LoQT model as a bitsandbytes NF4 folder
    /// (what transformers loads, with <c>quantization_config</c>) into <c>{output}/export</c>, and returns that folder.
    /// </summary>
    private async Task<(string Directory, string Format)> ExportNf4Async(string loqtCheckpoint, CancellationToken cancellationToken)
    {
        var options = new ExportOptions { Checkpoint = loqtCheckpoint, Output = Path.Combine(outputDirectory, "export"), Format = ExportFormat.Nf4 };
        var result = await ModelExporter.ExportAsync(options, null, cancellationToken).ConfigureAwait(false);
        log.WriteLine($"      {result.MergedLayers} adapters merged, {result.QuantizedWeights} weights in NF4, written to {result.OutputDirectory}");
        return (result.OutputDirectory, "bitsandbytes-nf4");
    }

    private async Task<(TrainingResult Result, double Seconds)> TrainAsync(
        LoqtMethod method, string tokenizerDirectory, string train, string valid, string runDirectory, CancellationToken cancellationToken)
    {
        var run = new TrainingRun
        {
            Config = settings.Model,
            TokenizerDirectory = tokenizerDirectory,
            Dataset = train,
            EvalDataset = valid,
            OutputDirectory = runDirectory,
            Options = settings.TrainingOptionsFor(method),
        };
        // Native memory of the previous run stays held by TorchSharp objects until their finalizers run (measured: a
        // forced collection every step keeps a run's RSS flat at ~0.4 GiB; without it, it grows to ~1.5 GiB); collect
        // once here so the second run does not start on top of the first one's leftovers.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var watch = Stopwatch.StartNew();
        var result = await Trainer.RunAsync(run, new TrainingProgressBar(log, everyNonInteractive: 100), null, cancellationToken).ConfigureAwait(false);
        log.WriteLine();
        if (result.Interrupted)
        {
            throw new OperationCanceledException($"interrupted at step {result.Steps} of the {method.ToName()} run; its checkpoint is {result.Checkpoint}");
        }

        return (result, watch.Elapsed.TotalSeconds);
    }

    /// <summary>Reloads a trained checkpoint with the layers it trained with and scores it; also counts its trainable parameters.</summary>
    private async Task<(DemoScores Scores, long Trainable)> ScoreCheckpointAsync(
        string checkpoint, string valid, IReadOnlyList<ExactMatchItem> problems, CancellationToken cancellationToken)
    {
        var (model, _, _) = LoqtCheckpoint.Load(checkpoint, trainable: true);
        using (model)
        {
            var trainable = model.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
            var scores = await ScoreAsync(model, checkpoint, valid, problems, cancellationToken).ConfigureAwait(false);
            return (scores, trainable);
        }
    }

    private async Task<DemoExportResult> ReloadExportAsync(
        (string Directory, string Format) exported, string valid, IReadOnlyList<ExactMatchItem> problems, CancellationToken cancellationToken)
    {
        using var model = ModelCommandOptions.Load(exported.Directory, "fp32", quantize: null, log, cancellationToken);
        var scores = await ScoreAsync(model, exported.Directory, valid, problems, cancellationToken).ConfigureAwait(false);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"      reloaded: held-out perplexity {scores.HeldOutPerplexity:0.000}, accuracy {scores.Accuracy.Accuracy:P1}"));
        var samples = scores.Accuracy.Outcomes.Take(settings.Samples).ToArray();
        foreach (var s in samples)
        {
            log.WriteLine($"      {s.Item.Prompt}{s.Generated}{(s.IsCorrect ? "" : $"   (expected {s.Item.Answer})")}");
        }

        return new DemoExportResult(exported.Directory, exported.Format, scores, samples);
    }

    /// <summary>Held-out perplexity (LlamaEvaluator) and exact-match accuracy of greedy answers (LlamaGenerator).</summary>
    private async Task<DemoScores> ScoreAsync(
        LlamaForCausalLM model, string modelDirectory, string valid, IReadOnlyList<ExactMatchItem> problems, CancellationToken cancellationToken)
    {
        var tokenizer = TokenizerLoader.FromDirectory(modelDirectory);
        var options = new TokenDatasetOptions { SequenceLength = settings.Model.MaxPositionEmbeddings, Pack = false };
        var heldOut = await TokenDataset.LoadAsync(valid, tokenizer, options, null, cancellationToken).ConfigureAwait(false);
        var loss = LlamaEvaluator.Evaluate(model, heldOut, settings.BatchSize, null, cancellationToken);
        var accuracy = ExactMatchEvaluator.Evaluate(model, tokenizer, problems, null, cancellationToken);
        return new DemoScores(loss.Loss, accuracy);
    }

    private void PrepareOutputDirectory()
    {
        var marker = Path.Combine(outputDirectory, MarkerFileName);
        if (Directory.Exists(outputDirectory) && Directory.EnumerateFileSystemEntries(outputDirectory).Any())
        {
            if (!File.Exists(marker))
            {
                throw new IOException($"--output {outputDirectory} is not empty and is not the output of an earlier demo (no {MarkerFileName}); choose another folder.");
            }

            // An earlier demo's output: replace what the demo writes, and only that ("export" is where the NF4 export goes).
            foreach (var folder in new[] { "data", "runs", "export" })
            {
                var path = Path.Combine(outputDirectory, folder);
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }
            }
        }

        Directory.CreateDirectory(outputDirectory);
        AtomicFile.WriteAllText(marker, "Written by `loqt demo`: a rerun may replace data/, runs/, export/, the chart and the summary files in this folder.\n");
        log.WriteLine($"demo: writing into {outputDirectory}");
    }

    private static long WeightBytesOnDisk(string checkpoint) =>
        new[] { LoqtCheckpoint.ModelFileName, LoqtCheckpoint.AdaptersFileName }
            .Select(f => Path.Combine(checkpoint, f)).Where(File.Exists).Sum(f => new FileInfo(f).Length);

    private void Step(int number, string what) => log.WriteLine($"demo [{number}/{TotalSteps}] {what}");

    private static string Describe(LoqtMethod method) => method == LoqtMethod.Full
        ? "full-rank AdamW (dense fp32 weights, every weight trained)"
        : "LoQT (NF4 weights and projections, only the low-rank factors B trained, merged on a schedule)";
}
