using System.Text.Json;
using LoQT.Data;

namespace LoQT.Tests.Data;

/// <summary>Deterministic batch order, epochs, and resuming from a saved position.</summary>
public sealed class TokenBatchLoaderTests : IAsyncLifetime, IDisposable
{
    private const int Sequences = 23;
    private readonly ScratchDirectory _dir = new();
    private TokenDataset _dataset = null!;

    public async Task InitializeAsync()
    {
        // Sequence i is the single token i, so a batch's first column tells which sequences it holds.
        var path = _dir.WriteLines("ids.jsonl", [.. Enumerable.Range(0, Sequences).Select(i => $$"""{"input_ids": [{{i}}]}""")]);
        _dataset = await TokenDataset.LoadAsync(path, null, new TokenDatasetOptions { SequenceLength = 4, Pack = false });
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _dir.Dispose();

    private static long[] SequencesOf(TokenBatch batch) => [.. Enumerable.Range(0, batch.BatchSize).Select(r => batch.InputIds[r * batch.SequenceLength])];

    private static List<long> Take(TokenBatchLoader loader, int batches)
        => [.. Enumerable.Range(0, batches).SelectMany(_ => SequencesOf(loader.Next()))];

    [Fact]
    public void WithoutShuffle_BatchesFollowFileOrder_AndTheLastBatchOfAnEpochIsSmaller()
    {
        var loader = new TokenBatchLoader(_dataset, batchSize: 5, shuffle: false);

        var epoch = loader.RestOfEpoch().ToList();

        Assert.Equal(5, loader.BatchesPerEpoch);
        Assert.Equal([5, 5, 5, 5, 3], epoch.Select(b => b.BatchSize));
        Assert.Equal(Enumerable.Range(0, Sequences).Select(i => (long)i), epoch.SelectMany(SequencesOf));
        Assert.Equal(new DataPosition(1, 0), loader.Position);
    }

    [Fact]
    public void Shuffle_VisitsEverySequenceOnceAnEpoch_InADifferentOrderEachEpoch()
    {
        var loader = new TokenBatchLoader(_dataset, batchSize: 4, shuffle: true, seed: 7);

        var first = loader.RestOfEpoch().SelectMany(SequencesOf).ToList();
        var second = loader.RestOfEpoch().SelectMany(SequencesOf).ToList();

        Assert.Equal(Enumerable.Range(0, Sequences).Select(i => (long)i), first.Order());
        Assert.Equal(Enumerable.Range(0, Sequences).Select(i => (long)i), second.Order());
        Assert.NotEqual(first, second);
        Assert.NotEqual(first, first.Order());
    }

    [Fact]
    public void Shuffle_SameSeed_GivesTheSameBatches_AnotherSeedOtherBatches()
    {
        var a = Take(new TokenBatchLoader(_dataset, 4, shuffle: true, seed: 11), 12);
        var b = Take(new TokenBatchLoader(_dataset, 4, shuffle: true, seed: 11), 12);
        var c = Take(new TokenBatchLoader(_dataset, 4, shuffle: true, seed: 12), 12);

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void ResumingFromASavedPosition_ContinuesWithTheSameBatches()
    {
        var uninterrupted = new TokenBatchLoader(_dataset, 4, shuffle: true, seed: 3);
        var expected = Take(uninterrupted, 15);

        var first = new TokenBatchLoader(_dataset, 4, shuffle: true, seed: 3);
        var before = Take(first, 8); // crosses into the second epoch (6 batches an epoch)
        var saved = JsonSerializer.Serialize(first.Position);
        var resumed = new TokenBatchLoader(_dataset, 4, shuffle: true, seed: 3, JsonSerializer.Deserialize<DataPosition>(saved));
        var after = Take(resumed, 7);

        Assert.Equal(new DataPosition(1, 8), JsonSerializer.Deserialize<DataPosition>(saved));
        Assert.Equal(expected, [.. before, .. after]);
    }

    [Fact]
    public void Position_AtTheEndOfAnEpoch_StartsTheNextOne()
    {
        var loader = new TokenBatchLoader(_dataset, 4, shuffle: false, position: new DataPosition(2, Sequences));
        Assert.Equal(new DataPosition(3, 0), loader.Position);
    }

    [Fact]
    public void Position_BeyondTheDataset_IsRejected()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBatchLoader(_dataset, 4, shuffle: false, position: new DataPosition(0, Sequences + 1)));
}
