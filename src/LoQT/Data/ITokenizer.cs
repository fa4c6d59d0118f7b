namespace LoQT.Data;

/// <summary>
/// A text tokenizer for a causal language model: text to token ids and back, plus the special tokens
/// the model was trained with. Load one with <see cref="TokenizerLoader.FromDirectory"/>.
/// Implementations are immutable and safe to use from several threads.
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of token ids (the largest id plus one, added tokens included).</summary>
    int VocabularySize { get; }

    /// <summary>Beginning-of-sequence token id, or <c>null</c> when the tokenizer defines none.</summary>
    int? BosTokenId { get; }

    /// <summary>End-of-sequence token id, or <c>null</c> when the tokenizer defines none.</summary>
    int? EosTokenId { get; }

    /// <summary>Padding token id, or <c>null</c> when the tokenizer defines none (Llama tokenizers usually do not).</summary>
    int? PadTokenId { get; }

    /// <summary>Unknown-token id, or <c>null</c> when the tokenizer defines none.</summary>
    int? UnknownTokenId { get; }

    /// <summary>Whether <see cref="Encode"/> with <c>addSpecialTokens: true</c> puts <see cref="BosTokenId"/> first.</summary>
    bool AddsBosToken { get; }

    /// <summary>Whether <see cref="Encode"/> with <c>addSpecialTokens: true</c> puts <see cref="EosTokenId"/> last.</summary>
    bool AddsEosToken { get; }

    /// <summary>
    /// Token ids of <paramref name="text"/>. Added tokens written in the text (for example
    /// <c>&lt;|begin_of_text|&gt;</c>) are recognised where the tokenizer format does so, as Hugging Face does.
    /// </summary>
    /// <param name="text">The text to encode.</param>
    /// <param name="addSpecialTokens">Also add the tokens the tokenizer puts around a sequence (BOS/EOS, as configured).</param>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false);

    /// <summary>Text of a sequence of token ids. Ids outside the vocabulary are skipped.</summary>
    /// <param name="ids">The token ids.</param>
    /// <param name="skipSpecialTokens">Leave out special tokens (BOS, EOS, padding, …).</param>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);

    /// <summary>The vocabulary string of a token id (e.g. <c>▁Hello</c>, <c>&lt;0x0A&gt;</c>), or <c>null</c> when out of range.</summary>
    string? IdToToken(int id);

    /// <summary>The id of a vocabulary string, or <c>null</c> when it is not in the vocabulary.</summary>
    int? TokenToId(string token);

    /// <summary>Whether the id is a special token (what <see cref="Decode"/> skips with <c>skipSpecialTokens</c>).</summary>
    bool IsSpecialToken(int id);
}
