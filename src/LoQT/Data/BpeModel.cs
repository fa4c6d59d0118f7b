using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace LoQT.Data;

/// <summary>
/// Hugging Face's BPE model: a word is split into characters (Unicode scalars) that are looked up in the
/// vocabulary — with byte fallback to <c>&lt;0xNN&gt;</c> tokens, or the unknown token — and adjacent pairs
/// are merged lowest merge rank first (ties: leftmost), exactly as the <c>tokenizers</c> library does.
/// Microsoft.ML.Tokenizers' BpeTokenizer has no byte fallback, hence this class.
/// </summary>
internal sealed class BpeModel
{
    // Words longer than this are not cached: a SentencePiece-style tokenizer has no pre-tokenizer, so its
    // "word" is a whole document, which never repeats.
    private const int MaxCachedWordLength = 64;
    private const int MaxCacheEntries = 100_000;

    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _spanLookup;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int[] _byteFallbackIds;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cacheEntries;

    // SentencePiece-style tokenizers have no pre-tokenizer: BPE runs over the whole text. When no vocabulary token has
    // "▁" right after another character, no merge can join a word to the "▁" that starts the next one, so BPE over
    // the words one by one gives the same ids — and words repeat, so they can be cached.
    private readonly bool _splitBeforeMetaspace;

    public BpeModel(
        Dictionary<string, int> vocabulary,
        IReadOnlyList<(string Left, string Right)> merges,
        int? unknownTokenId,
        bool fuseUnknown,
        bool byteFallback,
        bool ignoreMerges,
        string? continuingSubwordPrefix,
        string? endOfWordSuffix,
        string source)
    {
        _vocabulary = vocabulary;
        _spanLookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        UnknownTokenId = unknownTokenId;
        FuseUnknown = fuseUnknown;
        ByteFallback = byteFallback;
        IgnoreMerges = ignoreMerges;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        EndOfWordSuffix = endOfWordSuffix;

        _merges = new Dictionary<long, (int, int)>(merges.Count, PairKeyComparer.Instance);
        var prefixLength = continuingSubwordPrefix?.Length ?? 0;
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocabulary.TryGetValue(left, out var leftId) || !vocabulary.TryGetValue(right, out var rightId))
            {
                throw new InvalidDataException($"{source}: merge {rank} (\"{left} {right}\") uses a token that is not in the vocabulary.");
            }

            // With a continuing-subword prefix ("##"), the right part's prefix is dropped in the merged token.
            var merged = left + (prefixLength > 0 && right.StartsWith(continuingSubwordPrefix!, StringComparison.Ordinal) ? right[prefixLength..] : right);
            if (!vocabulary.TryGetValue(merged, out var newId))
            {
                throw new InvalidDataException($"{source}: merge {rank} (\"{left} {right}\") makes \"{merged}\", which is not in the vocabulary.");
            }

            // Later duplicates win, as in the tokenizers library's map.
            _merges[PairKey(leftId, rightId)] = (rank, newId);
        }

        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _splitBeforeMetaspace = !ignoreMerges && continuingSubwordPrefix is null && endOfWordSuffix is null
                                && vocabulary.ContainsKey(Metaspace.ToString())
                                && !vocabulary.Keys.Any(HasMetaspaceAfterOtherCharacter);

        _byteFallbackIds = new int[256];
        for (var b = 0; b < 256; b++)
        {
            _byteFallbackIds[b] = vocabulary.TryGetValue(ByteToken((byte)b), out var id) ? id : -1;
        }
    }

    public int? UnknownTokenId { get; }

    public bool FuseUnknown { get; }

    public bool ByteFallback { get; }

    public bool IgnoreMerges { get; }

    public string? ContinuingSubwordPrefix { get; }

    public string? EndOfWordSuffix { get; }

    public IReadOnlyDictionary<string, int> Vocabulary => _vocabulary;

    /// <summary>Whether words are cut before each "▁" that follows another character (see the field's comment).</summary>
    internal bool SplitsBeforeMetaspace => _splitBeforeMetaspace;

    /// <summary>BPE over the whole word in one piece, without cutting or caching (for tests of the shortcut).</summary>
    internal void TokenizeWhole(string word, List<int> output) => MergeWord(word, output);

    /// <summary>The vocabulary string of byte <paramref name="b"/> for byte fallback: <c>&lt;0x0A&gt;</c>.</summary>
    public static string ByteToken(byte b) => "<0x" + b.ToString("X2", CultureInfo.InvariantCulture) + ">";

    /// <summary>Appends the ids of one pre-tokenized word.</summary>
    public void Tokenize(string word, List<int> output)
    {
        if (!_splitBeforeMetaspace)
        {
            TokenizeCached(word, output);
            return;
        }

        var start = 0;
        for (var i = 1; i < word.Length; i++)
        {
            if (word[i] == Metaspace && word[i - 1] != Metaspace)
            {
                TokenizeCached(word.AsSpan(start, i - start), output);
                start = i;
            }
        }

        TokenizeCached(word.AsSpan(start), output);
    }

    private const char Metaspace = '\u2581';

    private static bool HasMetaspaceAfterOtherCharacter(string token)
    {
        for (var i = 1; i < token.Length; i++)
        {
            if (token[i] == Metaspace && token[i - 1] != Metaspace)
            {
                return true;
            }
        }

        return false;
    }

    private void TokenizeCached(ReadOnlySpan<char> word, List<int> output)
    {
        if (word.Length == 0)
        {
            return;
        }

        var cacheable = word.Length <= MaxCachedWordLength;
        if (cacheable && _cacheLookup.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }

        var start = output.Count;
        if (IgnoreMerges && _spanLookup.TryGetValue(word, out var whole))
        {
            output.Add(whole);
        }
        else
        {
            MergeWord(word, output);
        }

        // ConcurrentDictionary.Count takes every lock of the table; keep our own count.
        if (cacheable && Volatile.Read(ref _cacheEntries) < MaxCacheEntries
            && _cacheLookup.TryAdd(word, output.GetRange(start, output.Count - start).ToArray()))
        {
            Interlocked.Increment(ref _cacheEntries);
        }
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    // Hot loop of dataset tokenization: skip tiered JIT's slow first tier.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MergeWord(ReadOnlySpan<char> word, List<int> output)
    {
        var symbols = new List<int>(word.Length);
        int? pendingUnknown = null;
        var position = 0;
        Span<byte> utf8 = stackalloc byte[4];
        while (position < word.Length)
        {
            Rune.DecodeFromUtf16(word[position..], out var rune, out var charCount);
            var isFirst = position == 0;
            var isLast = position + charCount == word.Length;
            var runeChars = word.Slice(position, charCount);
            position += charCount;

            if (LookupPiece(runeChars, isFirst, isLast) is { } id)
            {
                if (pendingUnknown is { } unk)
                {
                    symbols.Add(unk);
                    pendingUnknown = null;
                }

                symbols.Add(id);
                continue;
            }

            if (ByteFallback)
            {
                var byteCount = rune.EncodeToUtf8(utf8);
                var allKnown = true;
                for (var i = 0; i < byteCount; i++)
                {
                    allKnown &= _byteFallbackIds[utf8[i]] >= 0;
                }

                if (allKnown)
                {
                    for (var i = 0; i < byteCount; i++)
                    {
                        symbols.Add(_byteFallbackIds[utf8[i]]);
                    }

                    continue;
                }
            }

            if (UnknownTokenId is { } unknown)
            {
                if (pendingUnknown is not null && !FuseUnknown)
                {
                    symbols.Add(unknown);
                }

                pendingUnknown = unknown;
            }
        }

        if (pendingUnknown is { } last)
        {
            symbols.Add(last);
        }

        MergeAll(symbols, output);
    }

    private int? LookupPiece(ReadOnlySpan<char> chars, bool isFirst, bool isLast)
    {
        if (ContinuingSubwordPrefix is null && EndOfWordSuffix is null)
        {
            return _spanLookup.TryGetValue(chars, out var id) ? id : null;
        }

        var text = (isFirst ? string.Empty : ContinuingSubwordPrefix ?? string.Empty) + chars.ToString()
                   + (isLast ? EndOfWordSuffix ?? string.Empty : string.Empty);
        return _vocabulary.TryGetValue(text, out var prefixed) ? prefixed : null;
    }

    // A doubly linked list over the symbols and a min-heap of candidate merges ordered by (rank, position);
    // stale heap entries are recognised when popped, as in the tokenizers library's Word::merge_all.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MergeAll(List<int> symbols, List<int> output)
    {
        var count = symbols.Count;
        if (count < 2)
        {
            output.AddRange(symbols);
            return;
        }

        var ids = symbols.ToArray();
        var prev = new int[count];
        var next = new int[count];
        var removed = new bool[count];
        for (var i = 0; i < count; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
        }

        var queue = new PriorityQueue<(int Position, int NewId), long>(count);
        for (var i = 0; i + 1 < count; i++)
        {
            if (_merges.TryGetValue(PairKey(ids[i], ids[i + 1]), out var merge))
            {
                queue.Enqueue((i, merge.NewId), Priority(merge.Rank, i));
            }
        }

        while (queue.TryDequeue(out var top, out _))
        {
            var pos = top.Position;
            if (removed[pos] || next[pos] < 0)
            {
                continue;
            }

            var right = next[pos];
            if (!_merges.TryGetValue(PairKey(ids[pos], ids[right]), out var current) || current.NewId != top.NewId)
            {
                continue;
            }

            ids[pos] = top.NewId;
            removed[right] = true;
            next[pos] = next[right];
            if (next[right] >= 0)
            {
                prev[next[right]] = pos;
            }

            if (prev[pos] >= 0 && _merges.TryGetValue(PairKey(ids[prev[pos]], ids[pos]), out var withPrevious))
            {
                queue.Enqueue((prev[pos], withPrevious.NewId), Priority(withPrevious.Rank, prev[pos]));
            }

            if (next[pos] >= 0 && _merges.TryGetValue(PairKey(ids[pos], ids[next[pos]]), out var withNext))
            {
                queue.Enqueue((pos, withNext.NewId), Priority(withNext.Rank, pos));
            }
        }

        for (var i = 0; i < count; i++)
        {
            if (!removed[i])
            {
                output.Add(ids[i]);
            }
        }
    }

    // long's own hash is (low ^ high), which for (left id, right id) pairs of a 32k vocabulary collides massively.
    private sealed class PairKeyComparer : IEqualityComparer<long>
    {
        public static readonly PairKeyComparer Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long key)
        {
            var h = (ulong)key * 0x9E3779B97F4A7C15UL;
            return (int)(h >> 32) ^ (int)h;
        }
    }

    private static long Priority(int rank, int position) => ((long)rank << 32) | (uint)position;
}
