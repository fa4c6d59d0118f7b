namespace LoQT.Data;

/// <summary>A token outside the model's vocabulary proper (tokenizer.json <c>added_tokens</c>), matched in text as a whole.</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LStrip, bool RStrip, bool Normalized);

/// <summary>
/// Cuts text into added tokens and the stretches between them, as the tokenizers library does before
/// normalization: leftmost-longest matches, <c>single_word</c> matches only between non-word characters,
/// <c>lstrip</c>/<c>rstrip</c> swallow the whitespace beside the token.
/// </summary>
internal sealed class AddedTokenSplitter
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenSplitter(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>
    /// Appends the pieces of <paramref name="text"/> to <paramref name="output"/>: an added token as its id,
    /// text between tokens with its start offset in <paramref name="text"/>.
    /// </summary>
    public void Split(string text, List<(int? Id, string Text, int Start)> output)
    {
        var pieceStart = 0;
        var i = 0;
        while (i < text.Length)
        {
            var match = LongestAt(text, i);
            if (match is null)
            {
                i++;
                continue;
            }

            var start = i;
            var stop = i + match.Content.Length;
            if (match.SingleWord && ((start > 0 && IsWordChar(text[start - 1])) || (stop < text.Length && IsWordChar(text[stop]))))
            {
                // Not a single word: the matched text stays text and matching resumes after it.
                i = stop;
                continue;
            }

            if (match.LStrip)
            {
                while (start > pieceStart && char.IsWhiteSpace(text[start - 1]))
                {
                    start--;
                }
            }

            if (match.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                {
                    stop++;
                }
            }

            if (start > pieceStart)
            {
                output.Add((null, text[pieceStart..start], pieceStart));
            }

            output.Add((match.Id, text[start..stop], start));
            pieceStart = stop;
            i = stop;
        }

        if (pieceStart < text.Length)
        {
            output.Add((null, text[pieceStart..], pieceStart));
        }
    }

    private AddedToken? LongestAt(string text, int position)
    {
        if (!_byFirstChar.TryGetValue(text[position], out var candidates))
        {
            return null;
        }

        var rest = text.AsSpan(position);
        foreach (var candidate in candidates)
        {
            if (rest.StartsWith(candidate.Content, StringComparison.Ordinal))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}
