using LoQT.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>Mean next-token loss and perplexity of a model over a tokenized dataset.</summary>
public static class LlamaEvaluator
{
    /// <summary>
    /// Scores every sequence of <paramref name="dataset"/> in order, <paramref name="batchSize"/> at a time, without
    /// gradients. The loss is the mean over all scored tokens (not a mean of batch means), so it does not depend on
    /// the batch size.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="dataset">The sequences; padding and <c>-100</c> labels take no loss.</param>
    /// <param name="batchSize">Sequences per forward pass.</param>
    /// <param name="progress">Reported after each batch.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    /// <exception cref="InvalidDataException">The dataset has no token to score (every sequence shorter than 2).</exception>
    public static EvaluationResult Evaluate(
        LlamaForCausalLM model,
        TokenDataset dataset,
        int batchSize,
        IProgress<EvaluationProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var totalBatches = (dataset.Count + batchSize - 1) / batchSize;
        double lossSum = 0;
        long tokens = 0;
        using var noGrad = no_grad();
        for (var b = 0; b < totalBatches; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var indices = Enumerable.Range(b * batchSize, Math.Min(batchSize, dataset.Count - (b * batchSize))).ToArray();
            var batch = dataset.CreateBatch(indices);
            var targets = batch.TargetCount;
            if (targets > 0)
            {
                lossSum += BatchLossSum(model, batch);
                tokens += targets;
            }

            progress?.Report(new EvaluationProgress(b + 1, totalBatches, tokens, tokens == 0 ? double.NaN : lossSum / tokens));
        }

        if (tokens == 0)
        {
            throw new InvalidDataException($"{dataset.Source}: nothing to score: every sequence is shorter than 2 tokens or has no labels");
        }

        return new EvaluationResult(lossSum / tokens, tokens);
    }

    private static double BatchLossSum(LlamaForCausalLM model, TokenBatch batch)
    {
        using var scope = NewDisposeScope();
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        var ids = torch.tensor(batch.InputIds, shape);
        var mask = torch.tensor(batch.AttentionMask, shape).to(model.Device);
        var labels = torch.tensor(batch.Labels, shape).to(model.Device);
        using var sum = model.NextTokenLoss(ids, batch.AttentionMask.All(m => m == 1) ? null : mask, labels, nn.Reduction.Sum);
        return sum.to(ScalarType.Float64).item<double>();
    }
}
