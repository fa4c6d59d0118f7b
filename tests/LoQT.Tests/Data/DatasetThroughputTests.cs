using System.Diagnostics;
using LoQT.Data;
using LoQT.Tests.Support;
using Xunit.Abstractions;

namespace LoQT.Tests.Data;

/// <summary>Tokenizing a real corpus is fast enough to do at the start of every run.</summary>
public sealed class DatasetThroughputTests(ITestOutputHelper output)
{
    [Fact]
    public async Task LoadAsync_TokenizesNlpCorpusValidationSplitQuickly()
    {
        var tokenizer = TokenizerLoader.FromDirectory(TestPaths.Fixture("tokenizers", "sp-bpe-32k"));
        var path = Path.Combine(TestPaths.Shared, "data", "nlp-corpus", "valid.jsonl");

        var watch = Stopwatch.StartNew();
        var dataset = await TokenDataset.LoadAsync(path, tokenizer, new TokenDatasetOptions { SequenceLength = 256 });
        watch.Stop();

        output.WriteLine($"{dataset.DocumentCount} documents, {dataset.TokenCount} tokens in {watch.Elapsed.TotalSeconds:F2} s " +
                         $"= {dataset.TokenCount / watch.Elapsed.TotalSeconds:F0} tokens/s");
        Assert.Equal(6000, dataset.DocumentCount); // valid.jsonl has 6000 lines, none blank
        // Generous for a shared 2-core machine: 0.8 MB of text should take well under a second when idle.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
    }
}
