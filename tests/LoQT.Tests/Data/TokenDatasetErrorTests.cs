using LoQT.Data;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>Malformed datasets fail with a message that says where.</summary>
public sealed class TokenDatasetErrorTests : IDisposable
{
    private static readonly Lazy<ITokenizer> TinyLlama = new(() => TokenizerLoader.FromDirectory(TestPaths.Fixture("tiny-llama")));

    private static readonly TokenDatasetOptions Options = new() { SequenceLength = 16 };

    private readonly ScratchDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static async Task<string> LoadError<TException>(string path, ITokenizer? tokenizer)
        where TException : Exception
        => (await Assert.ThrowsAsync<TException>(() => TokenDataset.LoadAsync(path, tokenizer, Options))).Message;

    [Fact]
    public async Task BadJson_IsReportedWithFileAndLine()
    {
        var path = _dir.WriteLines("data.jsonl", """{"text": "fine"}""", """{"text": "broken""");
        Assert.StartsWith($"{path}:2: not valid JSON", await LoadError<InvalidDataException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task LineThatIsNotAnObject_IsReportedWithFileAndLine()
    {
        var path = _dir.WriteLines("data.jsonl", """["text"]""");
        Assert.Equal($"{path}:1: expected a JSON object, got an array.", await LoadError<InvalidDataException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task PromptWithoutCompletion_IsReportedWithFileAndLine()
    {
        var path = _dir.WriteLines("data.jsonl", """{"prompt": "Q", "completion": "A"}""", "", """{"prompt": "Q"}""");
        Assert.Equal($"{path}:3: has \"prompt\" but no \"completion\".", await LoadError<InvalidDataException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task TextThatIsNotAString_IsReportedWithFileAndLine()
    {
        var path = _dir.WriteLines("data.jsonl", """{"text": 42}""");
        Assert.Equal($"{path}:1: \"text\" must be a string, got the number 42.", await LoadError<InvalidDataException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task InputIdThatIsNotAnInteger_IsReportedWithFileLineAndIndex()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [1, 2, "3"]}""");
        Assert.Equal(
            $"{path}:1: \"input_ids\"[2] must be a non-negative integer token id, got a string.",
            await LoadError<InvalidDataException>(path, null));
    }

    [Fact]
    public async Task InputIdBeyondTheVocabulary_IsReportedWithFileAndLine()
    {
        var path = _dir.WriteLines("ids.jsonl", """{"input_ids": [1, 512]}""");
        Assert.StartsWith($"{path}:1: \"input_ids\"[1] = 512 is not below the tokenizer's vocabulary size 512", await LoadError<InvalidDataException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task LineWithoutAKnownField_NamesTheFieldsItHas()
    {
        var path = _dir.WriteLines("data.jsonl", """{"content": "x", "id": 1}""");
        Assert.Equal(
            $"{path}:1: expected \"text\", \"prompt\" and \"completion\", or \"input_ids\"; found \"content\", \"id\".",
            await LoadError<InvalidDataException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task MixedRecordKinds_AreReportedWithBothLocations()
    {
        var first = _dir.WriteLines("a.jsonl", """{"text": "plain"}""");
        var second = _dir.WriteLines("b.jsonl", """{"text": "plain"}""", """{"prompt": "Q", "completion": "A"}""");
        Assert.Equal(
            $"{second}:2: a prompt/completion record, but {first}:1 is text; a dataset holds one kind of record.",
            await LoadError<InvalidDataException>(_dir.Path, TinyLlama.Value));
    }

    [Fact]
    public async Task TextWithoutTokenizer_SaysATokenizerIsNeeded()
    {
        var path = _dir.WriteLines("data.jsonl", """{"text": "plain"}""");
        Assert.Contains($"{path}:1: a Text record needs a tokenizer", await LoadError<InvalidOperationException>(path, null));
    }

    [Fact]
    public async Task EmptyFile_IsAnErrorNamingThePath()
    {
        var path = _dir.WriteLines("empty.jsonl", "", "  ");
        Assert.Equal($"Dataset '{path}' has no tokens: no non-blank lines or documents were found.", await LoadError<InvalidDataException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task DirectoryWithoutDataFiles_IsAnErrorNamingIt()
    {
        _dir.WriteLines("notes.md", "nothing here");
        Assert.Equal($"Dataset directory '{_dir.Path}' has no .txt or .jsonl files.", await LoadError<InvalidDataException>(_dir.Path, TinyLlama.Value));
    }

    [Fact]
    public async Task MissingPath_IsAnErrorNamingIt()
    {
        var path = Path.Combine(_dir.Path, "nope.jsonl");
        Assert.Equal($"Dataset '{path}' does not exist.", await LoadError<FileNotFoundException>(path, TinyLlama.Value));
    }

    [Fact]
    public async Task UnsupportedFileType_NamesTheSupportedOnes()
    {
        var path = _dir.WriteLines("data.csv", "text");
        Assert.Equal(
            $"Dataset file '{path}' is not supported: expected .txt or .jsonl files, or a directory of them.",
            await LoadError<NotSupportedException>(path, TinyLlama.Value));
    }
}
