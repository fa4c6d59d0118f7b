using System.Text.Json;
using LoQT.Data;
using LoQT.Models.Llama;
using LoQT.Tests.Data;
using static TorchSharp.torch;

namespace LoQT.Tests.Models.Llama;

/// <summary>Padded (<c>--no-pack</c>) batches: padding is out of attention and loss, so every row scores as it would alone.</summary>
public sealed class LlamaEvaluatorTests : IDisposable
{
    private readonly ScratchDirectory scratch = new();

    public void Dispose() => scratch.Dispose();

    [Fact]
    public async Task NoPackBatch_EachRowsLossIsItsLossWithoutPadding()
    {
        using var golden = new GoldenFixture("tiny-llama");
        using var model = LlamaForCausalLM.Load(golden.Directory);
        var rows = Tool.EvalCommandTests.Rows(golden.InputIds);
        long[][] sequences = [rows[1][..9], rows[0], rows[1][..17]];
        var path = scratch.WriteLines("ragged.jsonl", [.. sequences.Select(s => JsonSerializer.Serialize(new { input_ids = s }))]);
        var dataset = await TokenDataset.LoadAsync(path, null, new TokenDatasetOptions { SequenceLength = 24, Pack = false });
        var batch = dataset.CreateBatch([0, 1, 2]);
        using var _ = no_grad();
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        using var ids = tensor(batch.InputIds, shape);
        using var mask = tensor(batch.AttentionMask, shape);
        using var labels = tensor(batch.Labels, shape);

        using var padded = model.Forward(ids, attentionMask: mask);

        Assert.Equal(24, batch.SequenceLength);
        for (var row = 0; row < sequences.Length; row++)
        {
            using var rowLoss = LlamaForCausalLM.CausalLoss(padded.Logits.narrow(0, row, 1), labels.narrow(0, row, 1));
            using var alone = tensor(sequences[row], [1, sequences[row].Length]);
            using var unpadded = model.Forward(alone, labels: alone);
            // F32 rounding of a mean over at most 23 tokens.
            Assert.Equal(unpadded.Loss!.item<float>(), rowLoss.item<float>(), 1e-5f);
        }
    }

    [Fact]
    public async Task Evaluate_LossIsTheMeanOverTokensWhateverTheBatchSize()
    {
        using var golden = new GoldenFixture("tiny-llama");
        using var model = LlamaForCausalLM.Load(golden.Directory);
        var rows = Tool.EvalCommandTests.Rows(golden.InputIds);
        var path = scratch.WriteLines("two.jsonl", [.. new[] { rows[0][..5], rows[1] }.Select(s => JsonSerializer.Serialize(new { input_ids = s }))]);
        var dataset = await TokenDataset.LoadAsync(path, null, new TokenDatasetOptions { SequenceLength = 24, Pack = false });

        var together = LlamaEvaluator.Evaluate(model, dataset, batchSize: 2);
        var apart = LlamaEvaluator.Evaluate(model, dataset, batchSize: 1);

        Assert.Equal(4 + 23, together.Tokens);
        Assert.Equal(apart.Loss, together.Loss, 1e-6);
        Assert.Equal(Math.Exp(together.Loss), together.Perplexity, 1e-9);
    }
}
