using LoQT.Data;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>Which records each dataset format gives, and the tokens of each document.</summary>
public sealed class TokenDatasetFormatTests : IDisposable
{
    // tiny-llama: add_bos_token true, add_eos_token false, so a text document is BOS + text + EOS.
    private static readonly Lazy<ITokenizer> TinyLlama = new(() => TokenizerLoader.FromDirectory(TestPaths.Fixture("tiny-llama")));

    private readonly ScratchDirectory _dir = new();

    private static ITokenizer Tokenizer => TinyLlama.Value;

    public void Dispose() => _dir.Dispose();

    private static int[] Document(string text) => [Tokenizer.BosTokenId!.Value, .. Tokenizer.Encode(text), Tokenizer.EosTokenId!.Value];

    private static TokenDatasetOptions Unpacked(int sequenceLength = 64) => new() { SequenceLength = sequenceLength, Pack = false };

    private static int[][] Sequences(TokenDataset dataset)
        => [.. Enumerable.Range(0, dataset.Count).Select(i => dataset.GetSequence(i).InputIds.ToArray())];

    [Fact]
    public async Task Txt_GivesOneDocumentPerNonBlankLine()
    {
        var path = _dir.WriteLines("corpus.txt", "The first line.", "", "   ", "Second line here.");

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, Unpacked());

        Assert.Equal(DatasetRecordKind.Text, dataset.Kind);
        Assert.Equal([Document("The first line."), Document("Second line here.")], Sequences(dataset));
    }

    [Fact]
    public async Task Txt_WholeTextFiles_GivesTheFileAsOneDocument()
    {
        var path = _dir.Write("story.txt", "Once upon a time.\nThe end.\n");

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, Unpacked() with { WholeTextFiles = true });

        Assert.Equal([Document("Once upon a time.\nThe end.\n")], Sequences(dataset));
    }

    [Fact]
    public async Task Jsonl_WithText_TokenizesTheTextField()
    {
        var path = _dir.WriteLines("data.jsonl", """{"text": "Hello world", "source": "ignored"}""", """{"text": "Line two"}""");

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, Unpacked());

        Assert.Equal([Document("Hello world"), Document("Line two")], Sequences(dataset));
        Assert.True(dataset.GetSequence(0).IsTarget(0));
    }

    [Fact]
    public async Task Jsonl_WithEmptyText_IsSkippedLikeABlankLine()
    {
        var path = _dir.WriteLines("data.jsonl", """{"text": ""}""", """{"text": "kept"}""");

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, Unpacked());

        Assert.Equal([Document("kept")], Sequences(dataset));
        Assert.Equal(1, dataset.DocumentCount);
    }

    [Fact]
    public async Task Jsonl_WithInputIds_UsesTheIdsAsGivenWithoutTokenizer()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [5, 6, 7]}""", """{"input_ids": [8, 9]}""");

        var dataset = await TokenDataset.LoadAsync(path, tokenizer: null, Unpacked());

        Assert.Equal(DatasetRecordKind.PreTokenized, dataset.Kind);
        Assert.Equal([[5, 6, 7], [8, 9]], Sequences(dataset));
    }

    [Fact]
    public async Task Jsonl_WithPromptAndCompletion_TrainsOnlyOnCompletionAndEos()
    {
        var path = _dir.WriteLines("sft.jsonl", """{"prompt": "Question: what is two plus two?\nAnswer:", "completion": " four"}""");

        var dataset = await TokenDataset.LoadAsync(path, Tokenizer, Unpacked());

        var promptIds = Tokenizer.Encode("Question: what is two plus two?\nAnswer:", addSpecialTokens: true);
        var sequence = dataset.GetSequence(0);
        Assert.Equal(Document("Question: what is two plus two?\nAnswer: four"), sequence.InputIds.ToArray());
        var targets = Enumerable.Range(0, sequence.Length).Select(sequence.IsTarget).ToArray();
        Assert.All(targets[..promptIds.Count], Assert.False);
        Assert.All(targets[promptIds.Count..], Assert.True);
        Assert.True(targets[^1]); // the EOS is trained on, so the model learns to stop
    }

    [Fact]
    public async Task Directory_ReadsItsTxtAndJsonlFilesInOrdinalPathOrder()
    {
        _dir.WriteLines("b.jsonl", """{"text": "from b"}""");
        _dir.WriteLines("a.txt", "from a");
        _dir.WriteLines("sub/c.txt", "from c");
        _dir.WriteLines("README.md", "not data");
        _dir.WriteLines(".hidden/d.txt", "hidden");

        var dataset = await TokenDataset.LoadAsync(_dir.Path, Tokenizer, Unpacked());

        Assert.Equal([Document("from a"), Document("from b"), Document("from c")], Sequences(dataset));
    }

    [Fact]
    public async Task MaxTokens_StopsReadingAtTheLimit()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [1, 2, 3, 4]}""", """{"input_ids": [5, 6, 7, 8]}""", """{"input_ids": [9]}""");

        var dataset = await TokenDataset.LoadAsync(path, null, new TokenDatasetOptions { SequenceLength = 4, MaxTokens = 6 });

        Assert.Equal(6, dataset.TokenCount);
        Assert.Equal([[1, 2, 3, 4], [5, 6]], Sequences(dataset));
    }

    [Fact]
    public async Task Progress_ReportsTheFinalTotals()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [1, 2, 3]}""", """{"input_ids": [4]}""");
        var reports = new List<DatasetLoadProgress>();

        await TokenDataset.LoadAsync(path, null, Unpacked(), new SynchronousProgress<DatasetLoadProgress>(reports.Add));

        Assert.Equal(new DatasetLoadProgress(path, 2, 4), reports[^1]);
    }

    /// <summary>IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
