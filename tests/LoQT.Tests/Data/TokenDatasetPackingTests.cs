using LoQT.Data;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>Packing documents into blocks, padding unpacked sequences, and the labels and masks of batches.</summary>
public sealed class TokenDatasetPackingTests : IDisposable
{
    private static readonly Lazy<ITokenizer> TinyLlama = new(() => TokenizerLoader.FromDirectory(TestPaths.Fixture("tiny-llama")));

    private readonly ScratchDirectory _dir = new();

    private static ITokenizer Tokenizer => TinyLlama.Value;

    public void Dispose() => _dir.Dispose();

    private static int[] Document(string text) => [Tokenizer.BosTokenId!.Value, .. Tokenizer.Encode(text), Tokenizer.EosTokenId!.Value];

    private static long[] Row(long[] values, TokenBatch batch, int row) => values[(row * batch.SequenceLength)..((row + 1) * batch.SequenceLength)];

    [Fact]
    public async Task Pack_ConcatenatesDocumentsBetweenBosAndEos_AndCutsBlocksOfSequenceLength()
    {
        string[] texts = ["First document here.", "A second one follows it.", "Third."];
        var path = _dir.WriteLines("corpus.txt", texts);

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 8 });

        int[] stream = [.. texts.SelectMany(Document)];
        var blocks = Enumerable.Range(0, dataset.Count).Select(i => dataset.GetSequence(i).InputIds.ToArray()).ToArray();
        Assert.Equal(stream.Chunk(8).ToArray(), blocks);
        Assert.Equal(stream.Length, dataset.TokenCount);
    }

    [Fact]
    public async Task Pack_PreTokenizedLines_AreConcatenatedWithoutSeparators()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [10, 11, 12]}""", """{"input_ids": [13, 14, 15, 16]}""");

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 4 });

        Assert.Equal([10, 11, 12, 13], dataset.GetSequence(0).InputIds.ToArray());
        Assert.Equal([14, 15, 16], dataset.GetSequence(1).InputIds.ToArray());
    }

    [Fact]
    public async Task Pack_ShortLastBlock_IsPaddedWithAttentionMaskZeroAndIgnoredLabels()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [10, 11, 12, 13, 14, 15]}""");
        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 4 });

        var batch = dataset.CreateBatch([0, 1]);

        Assert.Equal((2, 4), (batch.BatchSize, batch.SequenceLength));
        Assert.Equal([10, 11, 12, 13, 14, 15, 2, 2], batch.InputIds); // padded with EOS: tiny-llama has no pad token
        Assert.Equal([1, 1, 1, 1, 1, 1, 0, 0], batch.AttentionMask);
        Assert.Equal([10, 11, 12, 13, 14, 15, -100, -100], batch.Labels);
        Assert.Equal(6, batch.TokenCount);
        Assert.Equal(4, batch.TargetCount); // positions 1..3 of row 0 and position 1 of row 1
    }

    [Fact]
    public async Task Pack_PromptCompletion_KeepsEachTokensLossMaskAcrossBlocks()
    {
        var path = _dir.WriteLines("sft.jsonl",
            """{"prompt": "Q: one?", "completion": " A: uno."}""",
            """{"prompt": "Q: two?", "completion": " A: dos."}""");

        var packed = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 5 });
        var unpacked = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 64, Pack = false });

        var expectedIds = Enumerable.Range(0, unpacked.Count).SelectMany(i => unpacked.GetSequence(i).InputIds.ToArray()).ToArray();
        var expectedMask = Enumerable.Range(0, unpacked.Count).SelectMany(i => Targets(unpacked.GetSequence(i))).ToArray();
        var batch = packed.CreateBatch([.. Enumerable.Range(0, packed.Count)]);
        var real = batch.AttentionMask.Select((m, i) => (m, i)).Where(x => x.m == 1).Select(x => x.i).ToArray();
        Assert.Equal(expectedIds.Select(id => (long)id), real.Select(i => batch.InputIds[i]));
        Assert.Equal(expectedIds.Zip(expectedMask, (id, t) => t ? id : TokenBatch.IgnoreIndex), real.Select(i => batch.Labels[i]));
        Assert.Contains(false, expectedMask);
    }

    [Fact]
    public async Task NoPack_PadsBatchToItsLongestSequence_AndMasksPaddingOutOfAttentionAndLoss()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [10, 11, 12]}""", """{"input_ids": [13]}""", """{"input_ids": [14, 15]}""");
        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 16, Pack = false });

        var batch = dataset.CreateBatch([1, 2]);

        Assert.Equal((2, 2), (batch.BatchSize, batch.SequenceLength));
        Assert.Equal([13, 2, 14, 15], batch.InputIds);
        Assert.Equal([1, 0, 1, 1], batch.AttentionMask);
        Assert.Equal([13, -100, 14, 15], batch.Labels);
    }

    [Fact]
    public async Task NoPack_CutsEachDocumentToSequenceLength()
    {
        var path = _dir.WriteLines("corpus.txt", "This line is certainly longer than six tokens.", "Short.");

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 6, Pack = false });

        Assert.Equal(Document("This line is certainly longer than six tokens.")[..6], dataset.GetSequence(0).InputIds.ToArray());
        Assert.Equal(Document("Short.").Take(6), dataset.GetSequence(1).InputIds.ToArray());
    }

    [Fact]
    public async Task NoPack_PromptCompletionBatch_IgnoresPromptAndPadding()
    {
        var path = _dir.WriteLines("sft.jsonl", """{"prompt": "Say hi:", "completion": " hi"}""", """{"prompt": "Longer prompt here:", "completion": " ok"}""");
        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, new TokenDatasetOptions { SequenceLength = 64, Pack = false });

        var batch = dataset.CreateBatch([0, 1]);

        for (var row = 0; row < 2; row++)
        {
            var sequence = dataset.GetSequence(row);
            var labels = Row(batch.Labels, batch, row);
            for (var t = 0; t < batch.SequenceLength; t++)
            {
                var expected = t < sequence.Length && sequence.IsTarget(t) ? sequence.InputIds.Span[t] : TokenBatch.IgnoreIndex;
                Assert.Equal(expected, labels[t]);
            }
        }
    }

    private static bool[] Targets(TokenSequence sequence) => [.. Enumerable.Range(0, sequence.Length).Select(sequence.IsTarget)];
}
