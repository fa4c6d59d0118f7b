namespace LoQT.Data;

/// <summary>Loads the tokenizer of a model directory (a Hugging Face checkpoint or a folder holding only tokenizer files).</summary>
public static class TokenizerLoader
{
    /// <summary>The tokenizer files this loader reads, in order of preference.</summary>
    public const string SupportedFiles =
        "tokenizer.json (Hugging Face, BPE model: SentencePiece-style with byte fallback or byte-level) " +
        "or tokenizer.model (SentencePiece BPE)";

    /// <summary>
    /// Loads <c>tokenizer.json</c> when the directory has one (as transformers' fast tokenizers do), else
    /// <c>tokenizer.model</c>. BOS/EOS/padding tokens and whether BOS/EOS are added come from
    /// <c>tokenizer_config.json</c> (<c>bos_token</c>, <c>eos_token</c>, <c>pad_token</c>, <c>add_bos_token</c>,
    /// <c>add_eos_token</c>), falling back to the tokenizer file itself and <c>config.json</c>.
    /// </summary>
    /// <param name="directory">The model or tokenizer directory.</param>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">The directory holds no supported tokenizer file.</exception>
    /// <exception cref="NotSupportedException">The tokenizer file uses a model or stage this loader does not implement (the message names it and what is supported).</exception>
    /// <exception cref="InvalidDataException">A tokenizer file is malformed (the message names the file).</exception>
    public static ITokenizer FromDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"Tokenizer directory '{directory}' does not exist.");
        }

        var config = TokenizerConfig.Load(directory);
        var tokenizerJson = Path.Combine(directory, "tokenizer.json");
        if (File.Exists(tokenizerJson))
        {
            return HuggingFaceTokenizerReader.Read(tokenizerJson, config);
        }

        var sentencePiece = Path.Combine(directory, "tokenizer.model");
        if (File.Exists(sentencePiece))
        {
            return SentencePieceModelTokenizer.Load(sentencePiece, config);
        }

        var found = Directory.EnumerateFiles(directory, "tokenizer*").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        throw new FileNotFoundException(
            $"No tokenizer in '{directory}': expected {SupportedFiles}" +
            (found.Count > 0 ? $"; found only {string.Join(", ", found)}." : "."));
    }
}
