using Microsoft.ML.Tokenizers;

namespace LoQT.Data;

/// <summary>
/// A SentencePiece <c>tokenizer.model</c> (Llama 1/2 style BPE with byte fallback), run by
/// Microsoft.ML.Tokenizers' <see cref="LlamaTokenizer"/>. Like the sentencepiece library, text that
/// spells a control token (<c>&lt;s&gt;</c>) is tokenized as text.
/// </summary>
internal sealed class SentencePieceModelTokenizer : ITokenizer
{
    private readonly LlamaTokenizer _model;
    private readonly string?[] _idToToken;
    private readonly IReadOnlyDictionary<string, int> _vocabulary;

    private SentencePieceModelTokenizer(LlamaTokenizer model, TokenizerConfig config, string modelPath)
    {
        _model = model;
        _vocabulary = model.Vocabulary;
        _idToToken = new string?[_vocabulary.Count == 0 ? 0 : _vocabulary.Values.Max() + 1];
        foreach (var (token, id) in _vocabulary)
        {
            _idToToken[id] = token;
        }

        BosTokenId = Resolve(config.BosToken, "bos_token", modelPath) ?? model.BeginningOfSentenceId;
        EosTokenId = Resolve(config.EosToken, "eos_token", modelPath) ?? model.EndOfSentenceId;
        PadTokenId = Resolve(config.PadToken, "pad_token", modelPath);
        UnknownTokenId = Resolve(config.UnknownToken, "unk_token", modelPath) ?? model.UnknownId;
        // transformers' LlamaTokenizer defaults: BOS on, EOS off.
        AddsBosToken = config.AddBosToken ?? true;
        AddsEosToken = config.AddEosToken ?? false;
    }

    public int VocabularySize => _idToToken.Length;

    public int? BosTokenId { get; }

    public int? EosTokenId { get; }

    public int? PadTokenId { get; }

    public int? UnknownTokenId { get; }

    public bool AddsBosToken { get; }

    public bool AddsEosToken { get; }

    public static SentencePieceModelTokenizer Load(string modelPath, TokenizerConfig config)
    {
        LlamaTokenizer model;
        try
        {
            using var stream = File.OpenRead(modelPath);
            model = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not IOException and not UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{modelPath}: not a SentencePiece BPE model that Microsoft.ML.Tokenizers can read ({e.Message})", e);
        }

        return new SentencePieceModelTokenizer(model, config, modelPath);
    }

    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = _model.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
        if (!addSpecialTokens || (!AddsBosToken && !AddsEosToken))
        {
            return ids;
        }

        var withSpecial = new List<int>(ids.Count + 2);
        if (AddsBosToken && BosTokenId is { } bos)
        {
            withSpecial.Add(bos);
        }

        withSpecial.AddRange(ids);
        if (AddsEosToken && EosTokenId is { } eos)
        {
            withSpecial.Add(eos);
        }

        return withSpecial;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var known = ids.Where(id => (uint)id < (uint)_idToToken.Length && _idToToken[id] is not null
                                     && !(skipSpecialTokens && IsSpecialToken(id)));
        return _model.Decode(known, considerSpecialTokens: !skipSpecialTokens);
    }

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public int? TokenToId(string token) => _vocabulary.TryGetValue(token, out var id) ? id : null;

    public bool IsSpecialToken(int id) => id == BosTokenId || id == EosTokenId || id == PadTokenId || id == UnknownTokenId;

    private int? Resolve(string? token, string name, string modelPath)
    {
        if (token is null)
        {
            return null;
        }

        return _vocabulary.TryGetValue(token, out var id)
            ? id
            : throw new InvalidDataException($"{modelPath}: tokenizer_config.json's {name} \"{token}\" is not in the SentencePiece vocabulary.");
    }
}
