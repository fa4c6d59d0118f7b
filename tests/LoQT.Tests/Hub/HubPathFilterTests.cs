using LoQT.Hub;

namespace LoQT.Tests.Hub;

/// <summary>Include / exclude globs behave like huggingface_hub's fnmatch-based allow / ignore patterns.</summary>
public sealed class HubPathFilterTests
{
    [Theory]
    [InlineData("config.json", "*.json", true)]
    [InlineData("sub/config.json", "*.json", true)] // fnmatch's '*' crosses '/'
    [InlineData("config.JSON", "*.json", false)] // case-sensitive (fnmatchcase)
    [InlineData("model-00001-of-00002.safetensors", "model-?????-of-*.safetensors", true)]
    [InlineData("model-1-of-2.safetensors", "model-?????-of-*.safetensors", false)]
    [InlineData("tokenizer.json", "[tv]okenizer.json", true)]
    [InlineData("tokenizer.json", "[!tv]okenizer.json", false)]
    [InlineData("a[b.txt", "a[b.txt", true)] // an unclosed '[' is literal
    [InlineData("a+b(1).txt", "a+b(1).txt", true)] // regex metacharacters are literal
    [InlineData("original/params.json", "original/", true)] // trailing '/' means the whole folder
    [InlineData("originality.json", "original/", false)]
    public void Pattern_MatchesLikePythonFnmatchcase(string path, string pattern, bool expected) =>
        Assert.Equal(expected, HubPathFilter.IsMatch(path, pattern));

    [Fact]
    public void Filter_KeepsPathsMatchingAnIncludeAndNoExclude()
    {
        var filter = new HubPathFilter(include: ["*.json", "*.safetensors"], exclude: ["original/*", "*.index.json"]);

        var kept = new[] { "config.json", "model.safetensors", "model.safetensors.index.json", "original/params.json", "README.md" }.Where(filter.Matches);

        Assert.Equal(["config.json", "model.safetensors"], kept);
    }

    [Fact]
    public void Filter_WithoutIncludes_KeepsEverythingNotExcluded()
    {
        var filter = new HubPathFilter(exclude: ["*.bin"]);

        Assert.True(filter.Matches("README.md"));
        Assert.False(filter.Matches("pytorch_model.bin"));
    }
}
