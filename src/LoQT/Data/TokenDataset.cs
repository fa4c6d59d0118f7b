namespace LoQT.Data;

/// <summary>
/// A tokenized dataset for causal language modelling, read from <c>.txt</c>/<c>.jsonl</c> files or a directory of
/// them (see <see cref="DatasetRecordKind"/>), held as one array of token ids.
/// <para>Documents: text gets the special tokens its tokenizer adds (Llama 2: BOS first) and an EOS last when the
/// tokenizer did not add one, so packed documents are always separated; prompt/completion likewise around
/// prompt + completion, with the loss on the completion and EOS only; pre-tokenized ids are used as given.</para>
/// <para>Packed (default): documents are concatenated and cut into blocks of
/// <see cref="TokenDatasetOptions.SequenceLength"/> tokens (the last may be shorter). Unpacked: a sequence per
/// document, cut to the sequence length.</para>
/// </summary>
public sealed class TokenDataset
{
    private const int ProgressEvery = 1000;

    private readonly int[] _tokens;
    private readonly bool[]? _lossMask;

    // Unpacked: start of each sequence in _tokens, plus the end (Count + 1 entries). Packed: null (blocks are fixed).
    private readonly int[]? _starts;

    private TokenDataset(string source, DatasetRecordKind kind, TokenDatasetOptions options, int[] tokens, bool[]? lossMask, int[]? starts, long documents, int padTokenId)
    {
        Source = source;
        Kind = kind;
        Options = options;
        _tokens = tokens;
        _lossMask = lossMask;
        _starts = starts;
        DocumentCount = documents;
        PadTokenId = padTokenId;
        Count = starts is null ? (int)((tokens.LongLength + options.SequenceLength - 1) / options.SequenceLength) : starts.Length - 1;
    }

    /// <summary>The path the dataset was read from.</summary>
    public string Source { get; }

    /// <summary>What its records hold.</summary>
    public DatasetRecordKind Kind { get; }

    /// <summary>The options it was read with.</summary>
    public TokenDatasetOptions Options { get; }

    /// <summary>Number of sequences (packed blocks, or documents when unpacked).</summary>
    public int Count { get; }

    /// <summary>Documents read (records that gave at least one token).</summary>
    public long DocumentCount { get; }

    /// <summary>Tokens stored, BOS/EOS included, padding not.</summary>
    public long TokenCount => _tokens.LongLength;

    /// <summary>The id that pads batches: the tokenizer's pad token, else its EOS, else 0 (padding is masked out either way).</summary>
    public int PadTokenId { get; }

    /// <summary>
    /// Reads and tokenizes a dataset, one line at a time.
    /// </summary>
    /// <param name="path">A .txt or .jsonl file, or a directory of them (read recursively in ordinal path order).</param>
    /// <param name="tokenizer">Tokenizes text records; may be <c>null</c> for a pre-tokenized dataset.</param>
    /// <param name="options">Sequence length, packing, token limit.</param>
    /// <param name="progress">Reports every 1000 documents and at the end.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    /// <exception cref="FileNotFoundException">The path does not exist.</exception>
    /// <exception cref="InvalidDataException">A malformed line (the message starts with <c>file:line:</c>), records of different kinds, or no tokens at all (the message names the path).</exception>
    public static async Task<TokenDataset> LoadAsync(
        string path,
        ITokenizer? tokenizer,
        TokenDatasetOptions options,
        IProgress<DatasetLoadProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        if (options.SequenceLength < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.SequenceLength, "SequenceLength must be at least 2.");
        }

        if (options.MaxTokens is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxTokens, "MaxTokens must be positive.");
        }

        var encoder = new DocumentEncoder(tokenizer);
        var tokens = new List<int>();
        List<bool>? lossMask = null;
        var starts = options.Pack ? null : new List<int> { 0 };
        DatasetRecord? first = null;
        long documents = 0;
        var limit = options.MaxTokens ?? long.MaxValue;
        var file = path;

        foreach (var f in DatasetFileReader.ListFiles(path))
        {
            file = f;
            await foreach (var record in DatasetFileReader.ReadAsync(f, options.WholeTextFiles, cancellationToken).ConfigureAwait(false))
            {
                first ??= record;
                if (record.Kind != first.Kind)
                {
                    throw new InvalidDataException(
                        $"{record.Location}: a {Describe(record.Kind)} record, but {first.Location} is {Describe(first.Kind)}; a dataset holds one kind of record.");
                }

                if (record.Kind == DatasetRecordKind.Text && record.Text!.Length == 0)
                {
                    continue; // {"text": ""} is skipped like a blank line, not turned into a lone BOS/EOS
                }

                var ids = encoder.Encode(record, out var mask);
                var take = ids.Length;
                if (!options.Pack)
                {
                    take = Math.Min(take, options.SequenceLength);
                }

                take = (int)Math.Min(take, limit - tokens.Count);
                if ((long)tokens.Count + take > int.MaxValue)
                {
                    throw new InvalidDataException($"Dataset '{path}' has more than {int.MaxValue} tokens; pass MaxTokens to read part of it.");
                }

                if (take == 0)
                {
                    continue;
                }

                if (mask is not null && lossMask is null)
                {
                    lossMask = new List<bool>(tokens.Capacity);
                    lossMask.AddRange(Enumerable.Repeat(true, tokens.Count));
                }

                tokens.AddRange(ids.AsSpan(0, take));
                lossMask?.AddRange(mask is null ? Enumerable.Repeat(true, take) : mask.AsSpan(0, take).ToArray());
                starts?.Add(tokens.Count);
                documents++;
                if (documents % ProgressEvery == 0)
                {
                    progress?.Report(new DatasetLoadProgress(f, documents, tokens.Count));
                }

                if (tokens.Count >= limit)
                {
                    break;
                }
            }

            if (tokens.Count >= limit)
            {
                break;
            }
        }

        progress?.Report(new DatasetLoadProgress(file, documents, tokens.Count));
        if (tokens.Count == 0)
        {
            throw new InvalidDataException($"Dataset '{path}' has no tokens: no non-blank lines or documents were found.");
        }

        var padId = tokenizer?.PadTokenId ?? tokenizer?.EosTokenId ?? 0;
        return new TokenDataset(path, first!.Kind, options, [.. tokens], lossMask?.ToArray(), starts?.ToArray(), documents, padId);
    }

    /// <summary>
    /// A packed dataset of token ids already in memory (pre-tokenized, every token a target), cut into blocks of
    /// <see cref="TokenDatasetOptions.SequenceLength"/> like a packed file.
    /// </summary>
    /// <param name="tokens">The ids (copied).</param>
    /// <param name="sequenceLength">Tokens per sequence, at least 2.</param>
    /// <param name="source">What the tokens are, for logs (e.g. <c>random tokens</c>).</param>
    /// <param name="padTokenId">The id that pads a short last batch.</param>
    /// <exception cref="ArgumentException">No tokens, a negative id, or a sequence length below 2.</exception>
    public static TokenDataset FromTokens(ReadOnlySpan<int> tokens, int sequenceLength, string source, int padTokenId = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 2);
        if (tokens.IsEmpty)
        {
            throw new ArgumentException("A dataset needs at least one token.", nameof(tokens));
        }

        foreach (var id in tokens)
        {
            if (id < 0)
            {
                throw new ArgumentException($"Token ids must not be negative; got {id}.", nameof(tokens));
            }
        }

        var options = new TokenDatasetOptions { SequenceLength = sequenceLength, Pack = true };
        return new TokenDataset(source, DatasetRecordKind.PreTokenized, options, tokens.ToArray(), null, null, 1, padTokenId);
    }

    /// <summary>
    /// <paramref name="sequences"/> sequences of uniformly random ids in [0, <paramref name="vocabularySize"/>) from a
    /// seeded generator: data for measuring memory and speed, where what the tokens say does not matter.
    /// </summary>
    /// <param name="vocabularySize">Ids are below this.</param>
    /// <param name="sequences">How many sequences.</param>
    /// <param name="sequenceLength">Tokens per sequence.</param>
    /// <param name="seed">The same seed gives the same tokens.</param>
    public static TokenDataset RandomTokens(int vocabularySize, int sequences, int sequenceLength, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 2);
        var random = new Random(seed);
        var tokens = new int[checked(sequences * sequenceLength)];
        for (var i = 0; i < tokens.Length; i++)
        {
            tokens[i] = random.Next(vocabularySize);
        }

        return FromTokens(tokens, sequenceLength, $"{sequences} x {sequenceLength} random tokens (seed {seed})");
    }

    /// <summary>Sequence <paramref name="index"/> (0 ≤ index &lt; <see cref="Count"/>).</summary>
    public TokenSequence GetSequence(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        int start, length;
        if (_starts is null)
        {
            start = index * Options.SequenceLength;
            length = Math.Min(Options.SequenceLength, _tokens.Length - start);
        }
        else
        {
            start = _starts[index];
            length = _starts[index + 1] - start;
        }

        return new TokenSequence(
            _tokens.AsMemory(start, length),
            _lossMask is null ? ReadOnlyMemory<bool>.Empty : _lossMask.AsMemory(start, length));
    }

    /// <summary>
    /// A batch of the given sequences, padded on the right: packed datasets to the sequence length, unpacked ones
    /// to their longest sequence. Padding has attention mask 0 and label <see cref="TokenBatch.IgnoreIndex"/>.
    /// </summary>
    public TokenBatch CreateBatch(IReadOnlyList<int> sequenceIndices)
    {
        ArgumentNullException.ThrowIfNull(sequenceIndices);
        if (sequenceIndices.Count == 0)
        {
            throw new ArgumentException("A batch needs at least one sequence.", nameof(sequenceIndices));
        }

        var sequences = sequenceIndices.Select(GetSequence).ToArray();
        var width = _starts is null ? Options.SequenceLength : sequences.Max(s => s.Length);
        var size = sequences.Length * width;
        var inputIds = new long[size];
        var attention = new long[size];
        var labels = new long[size];
        Array.Fill(inputIds, PadTokenId);
        Array.Fill(labels, TokenBatch.IgnoreIndex);
        for (var row = 0; row < sequences.Length; row++)
        {
            var sequence = sequences[row];
            var ids = sequence.InputIds.Span;
            var offset = row * width;
            for (var t = 0; t < ids.Length; t++)
            {
                inputIds[offset + t] = ids[t];
                attention[offset + t] = 1;
                if (sequence.IsTarget(t))
                {
                    labels[offset + t] = ids[t];
                }
            }
        }

        return new TokenBatch(inputIds, attention, labels, sequences.Length, width);
    }

    private static string Describe(DatasetRecordKind kind) => kind switch
    {
        DatasetRecordKind.Text => "text",
        DatasetRecordKind.PromptCompletion => "prompt/completion",
        DatasetRecordKind.PreTokenized => "pre-tokenized (input_ids)",
        _ => kind.ToString(),
    };
}
