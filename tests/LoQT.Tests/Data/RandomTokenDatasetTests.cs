using LoQT.Data;

namespace LoQT.Tests.Data;

/// <summary>The in-memory datasets benchmarks train on.</summary>
public sealed class RandomTokenDatasetTests
{
    [Fact]
    public void RandomTokens_AreSeededPackedSequencesBelowTheVocabularySize()
    {
        var a = TokenDataset.RandomTokens(vocabularySize: 50, sequences: 3, sequenceLength: 16, seed: 4);
        var b = TokenDataset.RandomTokens(vocabularySize: 50, sequences: 3, sequenceLength: 16, seed: 4);

        Assert.Equal(3, a.Count);
        Assert.Equal(48, a.TokenCount);
        Assert.Equal(DatasetRecordKind.PreTokenized, a.Kind);
        var ids = Enumerable.Range(0, 3).SelectMany(i => a.GetSequence(i).InputIds.ToArray()).ToArray();
        Assert.All(ids, id => Assert.InRange(id, 0, 49));
        Assert.Equal(ids, Enumerable.Range(0, 3).SelectMany(i => b.GetSequence(i).InputIds.ToArray()));
        Assert.True(ids.Distinct().Count() > 10);
    }

    [Fact]
    public void FromTokens_CutsBlocksOfTheSequenceLengthAndTrainsOnEveryToken()
    {
        var dataset = TokenDataset.FromTokens([1, 2, 3, 4, 5], sequenceLength: 2, source: "test");

        Assert.Equal(3, dataset.Count);
        var batch = dataset.CreateBatch([2]);
        Assert.Equal(new long[] { 5, 0 }, batch.InputIds); // the short last block is padded with the pad id, 0
        Assert.Equal(new long[] { 5, TokenBatch.IgnoreIndex }, batch.Labels);
    }

    [Fact]
    public void FromTokens_RejectsNegativeIds()
    {
        var error = Assert.Throws<ArgumentException>(() => TokenDataset.FromTokens([1, -3], sequenceLength: 2, source: "test"));

        Assert.Contains("-3", error.Message);
    }
}
