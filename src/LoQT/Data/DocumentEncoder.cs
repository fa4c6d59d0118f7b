namespace LoQT.Data;

/// <summary>
/// Turns dataset records into token ids and a loss mask (which tokens are trained on).
/// Text: the tokenizer's special tokens as configured (Llama 2: BOS first), then EOS last if the tokenizer did not
/// add it, so that packed documents are always separated. Prompt/completion: the same around prompt + completion,
/// with the loss mask on the completion and the EOS only. Pre-tokenized: the ids as given.
/// </summary>
internal sealed class DocumentEncoder(ITokenizer? tokenizer)
{
    /// <summary>Encodes one record; <paramref name="lossMask"/> is <c>null</c> when every token is trained on.</summary>
    public int[] Encode(DatasetRecord record, out bool[]? lossMask)
    {
        lossMask = null;
        switch (record.Kind)
        {
            case DatasetRecordKind.PreTokenized:
                var ids = record.InputIds!;
                if (tokenizer is not null)
                {
                    for (var i = 0; i < ids.Length; i++)
                    {
                        if (ids[i] >= tokenizer.VocabularySize)
                        {
                            throw new InvalidDataException(
                                $"{record.Location}: \"input_ids\"[{i}] = {ids[i]} is not below the tokenizer's vocabulary size {tokenizer.VocabularySize}.");
                        }
                    }
                }

                return ids;
            case DatasetRecordKind.Text:
                return WithEos(Tokenizer(record).Encode(record.Text!, addSpecialTokens: true));
            case DatasetRecordKind.PromptCompletion:
                return EncodePromptCompletion(record, out lossMask);
            default:
                throw new InvalidOperationException($"Unknown record kind {record.Kind}.");
        }
    }

    // As TRL does: the prompt alone and the prompt followed by the completion are tokenized, and the loss starts where
    // they stop agreeing (at the end of the prompt's ids unless a merge crosses the boundary).
    private int[] EncodePromptCompletion(DatasetRecord record, out bool[]? lossMask)
    {
        var tok = Tokenizer(record);
        var prompt = tok.Encode(record.Prompt!, addSpecialTokens: true);
        var promptLength = prompt.Count - (tok.AddsEosToken && tok.EosTokenId is not null && prompt.Count > 0 ? 1 : 0);
        var full = WithEos(tok.Encode(record.Prompt + record.Completion, addSpecialTokens: true));
        var shared = 0;
        while (shared < promptLength && shared < full.Length && full[shared] == prompt[shared])
        {
            shared++;
        }

        lossMask = new bool[full.Length];
        Array.Fill(lossMask, true, shared, full.Length - shared);
        return full;
    }

    private int[] WithEos(IReadOnlyList<int> ids)
    {
        var eos = tokenizer!.EosTokenId;
        var append = eos is not null && !tokenizer.AddsEosToken;
        var result = new int[ids.Count + (append ? 1 : 0)];
        for (var i = 0; i < ids.Count; i++)
        {
            result[i] = ids[i];
        }

        if (append)
        {
            result[^1] = eos!.Value;
        }

        return result;
    }

    private ITokenizer Tokenizer(DatasetRecord record)
        => tokenizer ?? throw new InvalidOperationException(
            $"{record.Location}: a {record.Kind} record needs a tokenizer (only pre-tokenized \"input_ids\" datasets can be read without one).");
}
