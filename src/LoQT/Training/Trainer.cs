using System.Diagnostics;
using LoQT.Data;
using LoQT.Loqt;
using LoQT.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// Trains a Llama model with LoQT (or a baseline) on a dataset: the loop of optimizer steps, merges and
/// re-initializations on the schedule, periodic evaluation, atomic checkpoints, <c>metrics.jsonl</c>, and resumption.
/// </summary>
/// <remarks>
/// A re-initialization step (the merge schedule's steps, step 0 first) arms every LoQT layer; each one computes its
/// full gradient inside backward, merges, takes a new P by SVD and chooses B by error compensation, then frees the
/// gradient. That step applies no optimizer update to any parameter, as design.md specifies, and B's optimizer state
/// restarts. (The reference, sebulo/LoQT, differs in two ways: it zeroes only the adapted layers' gradients, so its
/// embeddings, norms and lm_head still update at that step; and it still calls the optimizer step with B's zeroed
/// gradient and kept Adam state, which moves the new B along the old subspace's momentum. Restarting B's state is the
/// issue's choice.) Cancellation is checked between steps: a cancelled run saves a checkpoint and returns.
/// </remarks>
public static class Trainer
{
    /// <summary>Runs training to <see cref="TrainingOptions.Steps"/> (or until cancelled).</summary>
    /// <param name="run">Model, data, output and options.</param>
    /// <param name="progress">Told after every step.</param>
    /// <param name="log">Where to say what is being loaded (stderr in the tool), or null.</param>
    /// <param name="cancellationToken">Stops the run after the current step, with a checkpoint.</param>
    /// <exception cref="ArgumentException">An option is out of range for this model or data (named in the message), before any training.</exception>
    public static async Task<TrainingResult> RunAsync(
        TrainingRun run,
        IProgress<TrainingStepReport>? progress = null,
        TextWriter? log = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(run);
        var timings = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["load"] = 0, ["forward"] = 0, ["backward"] = 0, ["reinitialization_steps"] = 0, ["optimizer"] = 0, ["eval"] = 0, ["checkpoint"] = 0,
        };
        var clock = Stopwatch.StartNew();

        string? resumeCheckpoint = null;
        TrainerState? resumed = null;
        var options = run.Options;
        if (run.ResumeFrom is not null)
        {
            resumeCheckpoint = CheckpointDirectory.Resolve(run.ResumeFrom)
                ?? throw new DirectoryNotFoundException($"--resume {run.ResumeFrom}: no checkpoint there (no {CheckpointDirectory.TrainerStateFileName} and no {CheckpointDirectory.LatestFileName}).");
            resumed = TrainerState.Load(resumeCheckpoint);
            options = resumed.Options with { Steps = Math.Max(run.Options.Steps, resumed.Options.Steps) };
            log?.WriteLine($"Resuming from {resumeCheckpoint} at step {resumed.Step}.");
        }

        options.Validate();
        var config = resumeCheckpoint is not null ? LlamaConfig.Load(resumeCheckpoint)
            : run.ModelDirectory is not null ? LlamaConfig.Load(run.ModelDirectory)
            : run.Config ?? throw new ArgumentException("A training run needs a model directory, a config to pretrain, or a checkpoint to resume.", nameof(run));
        options.ValidateFor(config);

        var tokenizerDirectory = resumeCheckpoint ?? run.TokenizerDirectory ?? run.ModelDirectory;
        ITokenizer? tokenizer = null;
        if (run.TrainData is null || run.EvalDataset is not null || tokenizerDirectory is not null)
        {
            tokenizer = TokenizerLoader.FromDirectory(tokenizerDirectory
                ?? throw new ArgumentException("Pretraining needs a tokenizer directory (--tokenizer).", nameof(run)));
            if (tokenizer.VocabularySize > config.VocabSize)
            {
                throw new ArgumentException($"The tokenizer in {tokenizerDirectory} has {tokenizer.VocabularySize} tokens but the model's vocab_size is {config.VocabSize}.", nameof(run));
            }
        }

        var datasetOptions = new TokenDatasetOptions { SequenceLength = options.SequenceLength, Pack = !options.NoPacking };
        var datasetPath = resumed?.Dataset ?? run.Dataset;
        TokenDataset train;
        if (run.TrainData is not null && resumed is null)
        {
            train = run.TrainData;
            if (train.Options.SequenceLength != options.SequenceLength)
            {
                throw new ArgumentException($"The in-memory training data has sequences of {train.Options.SequenceLength} tokens; the run asks for --seq-len {options.SequenceLength}.", nameof(run));
            }
        }
        else
        {
            log?.WriteLine($"Reading {datasetPath} …");
            train = await TokenDataset.LoadAsync(datasetPath, tokenizer, datasetOptions, null, cancellationToken).ConfigureAwait(false);
        }
        if (options.Task == TrainingTask.Completion && train.Kind != DatasetRecordKind.PromptCompletion)
        {
            throw new ArgumentException($"--task completion needs prompt/completion records; {datasetPath} holds {train.Kind} records.", nameof(run));
        }

        var evalPath = resumed is not null ? resumed.EvalDataset : run.EvalDataset;
        var eval = evalPath is null ? null
            : await TokenDataset.LoadAsync(evalPath, tokenizer, datasetOptions, null, cancellationToken).ConfigureAwait(false);

        log?.WriteLine(resumeCheckpoint is not null ? $"Loading {resumeCheckpoint} …"
            : run.ModelDirectory is not null ? $"Loading {run.ModelDirectory} into {options.Method.ToName()} layers …"
            : $"Initializing a {config.NumHiddenLayers}-layer model layer by layer into {options.Method.ToName()} layers …");
        var layerOptions = options.Layers with { Seed = options.Seed };
        var (model, factory) = resumeCheckpoint is not null ? LoadForResume(resumeCheckpoint, run.Device)
            : run.ModelDirectory is not null && LoqtCheckpoint.IsLoqtModel(run.ModelDirectory) ? LoadForResume(run.ModelDirectory, run.Device)
            : run.ModelDirectory is not null ? LoqtCheckpoint.Build(run.ModelDirectory, options.Method, layerOptions, options.TargetModules, run.Device, cancellationToken: cancellationToken)
            : LoqtCheckpoint.CreateRandom(config, options.Method, layerOptions, options.TargetModules, options.Seed, run.Device);
        timings["load"] = clock.Elapsed.TotalSeconds;

        using var modelScope = model;
        using var optimizer = CreateOptimizer(model, factory, options);
        factory.UpdateSink = optimizer;
        factory.TimingSink = run.Timings;
        optimizer.TimingSink = run.Timings;
        if (resumed is not null)
        {
            using var state = resumed.LoadOptimizerState(resumeCheckpoint!);
            optimizer.ImportState(state);
        }

        run.ModelReady?.Invoke(model, optimizer);
        var schedule = new LearningRateSchedule(options.LearningRateSchedule, options.LearningRate, options.WarmupSteps, options.Steps);
        var loader = new TokenBatchLoader(train, options.BatchSize, shuffle: true, (ulong)options.Seed, resumed?.DataPosition ?? default);
        using var metrics = MetricsLog.Open(run.OutputDirectory, resumed?.Step);
        var step = resumed?.Step ?? 0;
        var tokensSeen = resumed?.TokensSeen ?? 0;
        var lastLoss = resumed?.LastLoss ?? double.NaN;
        var lastEval = resumed?.LastEvalLoss;
        var baseModel = resumed?.BaseModel ?? run.ModelDirectory ?? "random init";
        string? checkpoint = resumeCheckpoint;
        long tokensThisProcess = 0;
        double trainSeconds = 0;
        var interrupted = false;

        string Save()
        {
            var watch = Stopwatch.StartNew();
            var state = new TrainerState
            {
                Step = step, TokensSeen = tokensSeen, DataPosition = loader.Position, Options = options, Dataset = datasetPath,
                EvalDataset = evalPath, BaseModel = baseModel, LastLoss = double.IsNaN(lastLoss) ? null : lastLoss, LastEvalLoss = lastEval,
            };
            var path = CheckpointDirectory.Save(run.OutputDirectory, step, folder =>
            {
                LoqtCheckpoint.Save(folder, model, factory.Method, factory.Options, options.TargetModules);
                if (tokenizerDirectory is not null)
                {
                    LoqtCheckpoint.CopyCompanionFiles(tokenizerDirectory, folder);
                }

                using var optimizerState = optimizer.ExportState();
                state.Save(folder, optimizerState);
            }, options.KeepCheckpoints);
            timings["checkpoint"] += watch.Elapsed.TotalSeconds;
            return path;
        }

        double Evaluate()
        {
            var watch = Stopwatch.StartNew();
            var result = LlamaEvaluator.Evaluate(model, eval!, options.BatchSize, null, cancellationToken);
            timings["eval"] += watch.Elapsed.TotalSeconds;
            return result.Loss;
        }

        while (step < options.Steps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                interrupted = true;
                break;
            }

            var stepWatch = Stopwatch.StartNew();
            var reinitialize = options.UsesReinitialization && options.Schedule.IsUpdateStep(step);
            if (reinitialize)
            {
                factory.ArmReinitialization(options.GradientAccumulation);
            }

            optimizer.LearningRate = schedule.At(step);
            double lossSum = 0;
            long stepTokens = 0;
            for (var micro = 0; micro < options.GradientAccumulation; micro++)
            {
                // On a re-initialization step nothing is updated: per-layer gradients are dropped as they come.
                optimizer.BeginMicroBatch(micro == options.GradientAccumulation - 1, discard: reinitialize);
                var batch = loader.Next();
                using var scope = NewDisposeScope();
                var watch = Stopwatch.StartNew();
                var ids = tensor(batch.InputIds, [batch.BatchSize, batch.SequenceLength], ScalarType.Int64, run.Device);
                var mask = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength], ScalarType.Int64, run.Device);
                var labels = tensor(batch.Labels, [batch.BatchSize, batch.SequenceLength], ScalarType.Int64, run.Device);
                // The fused head + loss also computes its own gradients here, so "forward" includes that part of backward.
                var loss = model.NextTokenLoss(ids, mask, labels);
                timings["forward"] += watch.Elapsed.TotalSeconds;
                run.Timings?.Record(TimedStage.Forward, watch.ElapsedTicks);
                watch.Restart();
                (options.GradientAccumulation > 1 ? loss / options.GradientAccumulation : loss).backward();
                factory.ReleaseBackwardResults();
                timings[reinitialize ? "reinitialization_steps" : "backward"] += watch.Elapsed.TotalSeconds;
                run.Timings?.Record(TimedStage.Backward, watch.ElapsedTicks);
                lossSum += loss.ToDouble();
                stepTokens += batch.TokenCount;
            }

            var optimizerWatch = Stopwatch.StartNew();
            if (reinitialize)
            {
                optimizer.ZeroGrad();
            }

            optimizer.Step();
            timings["optimizer"] += optimizerWatch.Elapsed.TotalSeconds;
            step++;
            tokensSeen += stepTokens;
            tokensThisProcess += stepTokens;
            trainSeconds += stepWatch.Elapsed.TotalSeconds;
            lastLoss = lossSum / options.GradientAccumulation;
            if (!double.IsFinite(lastLoss))
            {
                throw new InvalidOperationException($"The training loss became {lastLoss} at step {step}; lower --lr or check the data.");
            }

            double? evalLoss = null;
            if (eval is not null && ((options.EvalEvery > 0 && step % options.EvalEvery == 0) || step == options.Steps))
            {
                evalLoss = lastEval = Evaluate();
            }

            var perStep = trainSeconds / Math.Max(1, step - (resumed?.Step ?? 0));
            var report = new TrainingStepReport(step, options.Steps, lastLoss, optimizer.LearningRate, stepTokens / Math.Max(1e-9, stepWatch.Elapsed.TotalSeconds),
                clock.Elapsed, TimeSpan.FromSeconds(perStep * (options.Steps - step)), ProcessMemory.CurrentBytes, reinitialize, evalLoss);
            var record = new Dictionary<string, object?>
            {
                ["step"] = step, ["loss"] = lastLoss, ["lr"] = optimizer.LearningRate, ["tokens"] = tokensSeen,
                ["tokens_per_second"] = Math.Round(report.TokensPerSecond, 1), ["seconds"] = Math.Round(stepWatch.Elapsed.TotalSeconds, 4),
                ["rss_bytes"] = report.ResidentBytes, ["reinitialized"] = reinitialize,
            };
            if (evalLoss is { } e)
            {
                record["eval_loss"] = e;
                record["eval_perplexity"] = Math.Exp(e);
            }

            metrics.Write(record);
            progress?.Report(report);

            if (run.WriteCheckpoints && options.SaveEvery > 0 && step % options.SaveEvery == 0 && step < options.Steps)
            {
                checkpoint = Save();
            }
        }

        if (run.WriteCheckpoints
            && (checkpoint is null || CheckpointDirectory.Resolve(run.OutputDirectory) is not { } latest || TrainerState.Load(latest).Step != step))
        {
            checkpoint = Save();
        }

        return new TrainingResult(step, lastLoss, lastEval, checkpoint, interrupted,
            trainSeconds > 0 ? tokensThisProcess / trainSeconds : 0, ProcessMemory.PeakBytes, timings);
    }

    private static (LlamaForCausalLM, LoqtLinearFactory) LoadForResume(string checkpoint, Device? device)
    {
        var (model, factory, _) = LoqtCheckpoint.Load(checkpoint, device);
        return (model, factory);
    }

    private static AdamWOptimizer CreateOptimizer(LlamaForCausalLM model, LoqtLinearFactory factory, TrainingOptions options)
    {
        var galore = factory.GaLoreWeights.Select(w => w.Weight).ToHashSet(ReferenceEqualityComparer.Instance);
        var galoreSettings = new GaLoreSettings(options.Layers.Rank, options.Schedule, options.Layers.Alpha, options.Layers.Svd);
        var parameters = model.named_parameters()
            .Where(p => p.parameter.requires_grad)
            .Select(p => new TrainableParameter(p.name, p.parameter, ApplyWeightDecay: p.parameter.dim() >= 2,
                GaLore: galore.Contains(p.parameter) ? galoreSettings : null))
            .ToList();
        if (parameters.Count == 0)
        {
            throw new InvalidOperationException("The model has no trainable parameter.");
        }

        var adamOptions = new AdamWOptions
        {
            LearningRate = options.LearningRate,
            WeightDecay = options.WeightDecay,
            MaxGradNorm = options.MaxGradNorm,
            PerLayerUpdates = options.PerLayerUpdates,
        };
        return options.Optimizer == OptimizerKind.AdamW8bit ? new AdamW8Bit(parameters, adamOptions) : new AdamW(parameters, adamOptions);
    }
}
