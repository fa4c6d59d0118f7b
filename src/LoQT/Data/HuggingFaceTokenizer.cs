using System.Collections.Immutable;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace LoQT.Data;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> tokenizer with a BPE model, run stage by stage as the tokenizers
/// library does: added tokens are cut out of the raw text, each stretch between them is normalized,
/// pre-tokenized and BPE-encoded, and the special tokens of the post-processor go around the result.
/// Byte-level vocabularies whose ids are their merge ranks (Llama 3) are encoded by Microsoft.ML.Tokenizers'
/// <see cref="TiktokenTokenizer"/>; others by <see cref="BpeModel"/>. Built by <see cref="HuggingFaceTokenizerReader"/>.
/// </summary>
internal sealed class HuggingFaceTokenizer : ITokenizer
{
    private readonly HuggingFaceTokenizerParts _parts;
    private readonly AddedTokenSplitter _rawSplitter;
    private readonly AddedTokenSplitter _normalizedSplitter;
    private readonly string?[] _idToToken;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly HashSet<int> _specialIds;

    public HuggingFaceTokenizer(HuggingFaceTokenizerParts parts)
    {
        _parts = parts;
        _rawSplitter = new AddedTokenSplitter(parts.AddedTokens.Where(t => !t.Normalized));
        _normalizedSplitter = new AddedTokenSplitter(parts.AddedTokens.Where(t => t.Normalized));

        _tokenToId = new Dictionary<string, int>(parts.Model.Vocabulary, StringComparer.Ordinal);
        foreach (var added in parts.AddedTokens)
        {
            _tokenToId[added.Content] = added.Id;
        }

        _idToToken = new string?[_tokenToId.Count == 0 ? 0 : _tokenToId.Values.Max() + 1];
        foreach (var (token, id) in parts.Model.Vocabulary)
        {
            _idToToken[id] = token;
        }

        // Added tokens win over a vocabulary entry with the same id, as in the tokenizers library.
        foreach (var added in parts.AddedTokens)
        {
            _idToToken[added.Id] = added.Content;
        }

        _specialIds = [.. parts.AddedTokens.Where(t => t.Special).Select(t => t.Id)];
        foreach (var id in new[] { parts.BosTokenId, parts.EosTokenId, parts.PadTokenId, parts.UnknownTokenId })
        {
            if (id is { } special)
            {
                _specialIds.Add(special);
            }
        }
    }

    public int VocabularySize => _idToToken.Length;

    public int? BosTokenId => _parts.BosTokenId;

    public int? EosTokenId => _parts.EosTokenId;

    public int? PadTokenId => _parts.PadTokenId;

    public int? UnknownTokenId => _parts.UnknownTokenId;

    public bool AddsBosToken => _parts.PrefixIds.Count > 0 && _parts.PrefixIds[0] == BosTokenId;

    public bool AddsEosToken => _parts.SuffixIds.Count > 0 && _parts.SuffixIds[^1] == EosTokenId;

    /// <summary>The BPE model.</summary>
    internal BpeModel Model => _parts.Model;

    /// <summary>Whether byte-level words go through Microsoft.ML.Tokenizers' Tiktoken (false: through <see cref="BpeModel"/>).</summary>
    internal bool UsesTiktoken => _parts.Tiktoken is not null;

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecialTokens)
        {
            ids.AddRange(_parts.PrefixIds);
        }

        var segments = new List<(int? Id, string Text, int Start)>();
        if (_rawSplitter.IsEmpty)
        {
            segments.Add((null, text, 0));
        }
        else
        {
            _rawSplitter.Split(text, segments);
        }

        var pieces = new List<PreToken>();
        var normalizedSegments = new List<(int? Id, string Text, int Start)>();
        foreach (var (id, segment, start) in segments)
        {
            if (id is { } addedId)
            {
                ids.Add(addedId);
                continue;
            }

            var normalized = _parts.Normalizer?.Normalize(segment) ?? segment;
            normalizedSegments.Clear();
            if (_normalizedSplitter.IsEmpty)
            {
                normalizedSegments.Add((null, normalized, 0));
            }
            else
            {
                _normalizedSplitter.Split(normalized, normalizedSegments);
            }

            foreach (var (innerId, innerText, innerStart) in normalizedSegments)
            {
                if (innerId is { } normalizedAddedId)
                {
                    ids.Add(normalizedAddedId);
                    continue;
                }

                pieces.Clear();
                pieces.Add(new PreToken(innerText, start == 0 && innerStart == 0));
                _parts.PreTokenizer?.PreTokenize(pieces);
                foreach (var piece in pieces)
                {
                    EncodeWord(piece.Text, ids);
                }
            }
        }

        if (addSpecialTokens)
        {
            ids.AddRange(_parts.SuffixIds);
        }

        return ids;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not { } token || (skipSpecialTokens && _specialIds.Contains(id)))
            {
                continue;
            }

            tokens.Add(token);
        }

        var text = _parts.Decoder is { } decoder ? string.Concat(decoder.DecodeChain(tokens)) : string.Join(' ', tokens);
        return _parts.CleanUpTokenizationSpaces ? CleanUpTokenizationSpaces(text) : text;
    }

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out var id) ? id : null;

    public bool IsSpecialToken(int id) => _specialIds.Contains(id);

    private void EncodeWord(string word, List<int> ids)
    {
        if (word.Length == 0)
        {
            return;
        }

        if (_parts.Tiktoken is { } tiktoken)
        {
            ids.AddRange(tiktoken.EncodeToIds(word, considerPreTokenization: false, considerNormalization: false));
        }
        else if (_parts.PreTokenizer is { IsByteLevel: true })
        {
            _parts.Model.Tokenize(ByteLevelAlphabet.Encode(word), ids);
        }
        else
        {
            _parts.Model.Tokenize(word, ids);
        }
    }

    // transformers' clean_up_tokenization, applied after decoding when tokenizer_config.json asks for it.
    private static string CleanUpTokenizationSpaces(string text)
    {
        var sb = new StringBuilder(text);
        foreach (var (from, to) in CleanUps)
        {
            sb.Replace(from, to);
        }

        return sb.ToString();
    }

    private static readonly ImmutableArray<(string From, string To)> CleanUps =
    [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ];
}
