using System.Text.Json;
using System.Text.RegularExpressions;

namespace LoQT.Data;

/// <summary>One piece of text on its way to the BPE model; <see cref="AtStart"/> marks the piece that begins the input.</summary>
internal readonly record struct PreToken(string Text, bool AtStart);

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> pre-tokenizer: splits normalized text into the words BPE works on.
/// Supported: Sequence, Split, ByteLevel (last in a sequence), Metaspace, Digits.
/// </summary>
internal abstract partial class TextPreTokenizer
{
    public const string Supported = "Sequence, Split, ByteLevel, Metaspace, Digits";

    /// <summary>Whether the pieces are byte-level: the model sees their UTF-8 bytes in <see cref="ByteLevelAlphabet"/>.</summary>
    public virtual bool IsByteLevel => false;

    public abstract void PreTokenize(List<PreToken> pieces);

    public static TextPreTokenizer? FromJson(JsonElement element, string source)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var type = HuggingFaceJson.TypeOf(element, "pre_tokenizer", source);
        switch (type)
        {
            case "Sequence":
                var parts = HuggingFaceJson.Array(element, "pretokenizers", source).Select(e => FromJson(e, source)).OfType<TextPreTokenizer>().ToList();
                for (var i = 0; i < parts.Count - 1; i++)
                {
                    if (parts[i].IsByteLevel)
                    {
                        throw new NotSupportedException($"{source}: a pre-tokenizer after ByteLevel is not supported (ByteLevel must come last).");
                    }
                }

                return new SequencePreTokenizer(parts);
            case "Split":
                return new SplitPreTokenizer(
                    HuggingFaceJson.Pattern(element, source),
                    ParseBehavior(HuggingFaceJson.String(element, "behavior", source), source),
                    HuggingFaceJson.Bool(element, "invert", false));
            case "ByteLevel":
                return new ByteLevelPreTokenizer(
                    HuggingFaceJson.Bool(element, "add_prefix_space", true),
                    HuggingFaceJson.Bool(element, "use_regex", true));
            case "Metaspace":
                return MetaspacePreTokenizer.Create(element, source);
            case "Digits":
                return new DigitsPreTokenizer(HuggingFaceJson.Bool(element, "individual_digits", false));
            default:
                throw new NotSupportedException($"{source}: pre-tokenizer \"{type}\" is not supported (supported: {Supported}).");
        }
    }

    /// <summary>Splits every piece at <paramref name="matches"/> of its text, combining matched and unmatched spans per <paramref name="behavior"/>.</summary>
    protected static void SplitEach(List<PreToken> pieces, Func<string, IEnumerable<(int Start, int End)>> matches, SplitBehavior behavior, bool invert)
    {
        var result = new List<PreToken>(pieces.Count);
        foreach (var piece in pieces)
        {
            var spans = new List<(int Start, int End, bool IsMatch)>();
            var previousEnd = 0;
            foreach (var (start, end) in matches(piece.Text))
            {
                if (start == end)
                {
                    continue;
                }

                if (start > previousEnd)
                {
                    spans.Add((previousEnd, start, invert));
                }

                spans.Add((start, end, !invert));
                previousEnd = end;
            }

            if (previousEnd < piece.Text.Length)
            {
                spans.Add((previousEnd, piece.Text.Length, invert));
            }

            var first = true;
            foreach (var (start, end) in Combine(spans, behavior))
            {
                result.Add(new PreToken(piece.Text[start..end], piece.AtStart && first));
                first = false;
            }
        }

        pieces.Clear();
        pieces.AddRange(result);
    }

    // The tokenizers library's SplitDelimiterBehavior, span by span.
    private static List<(int Start, int End)> Combine(List<(int Start, int End, bool IsMatch)> spans, SplitBehavior behavior)
    {
        var result = new List<(int Start, int End)>(spans.Count);
        switch (behavior)
        {
            case SplitBehavior.Removed:
                result.AddRange(spans.Where(s => !s.IsMatch).Select(s => (s.Start, s.End)));
                break;
            case SplitBehavior.Isolated:
                result.AddRange(spans.Select(s => (s.Start, s.End)));
                break;
            case SplitBehavior.MergedWithPrevious:
            {
                var previousMatch = false;
                foreach (var s in spans)
                {
                    if (s.IsMatch && !previousMatch && result.Count > 0)
                    {
                        result[^1] = (result[^1].Start, s.End);
                    }
                    else
                    {
                        result.Add((s.Start, s.End));
                    }

                    previousMatch = s.IsMatch;
                }

                break;
            }

            case SplitBehavior.MergedWithNext:
            {
                var previousMatch = false;
                for (var i = spans.Count - 1; i >= 0; i--)
                {
                    var s = spans[i];
                    if (s.IsMatch && !previousMatch && result.Count > 0)
                    {
                        result[^1] = (s.Start, result[^1].End);
                    }
                    else
                    {
                        result.Add((s.Start, s.End));
                    }

                    previousMatch = s.IsMatch;
                }

                result.Reverse();
                break;
            }

            case SplitBehavior.Contiguous:
            {
                var previousMatch = false;
                foreach (var s in spans)
                {
                    if (s.IsMatch == previousMatch && result.Count > 0)
                    {
                        result[^1] = (result[^1].Start, s.End);
                    }
                    else
                    {
                        result.Add((s.Start, s.End));
                    }

                    previousMatch = s.IsMatch;
                }

                break;
            }
        }

        return result;
    }

    private static SplitBehavior ParseBehavior(string behavior, string source) => behavior switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        _ => throw new NotSupportedException($"{source}: split behavior \"{behavior}\" is not supported."),
    };

    private static IEnumerable<(int Start, int End)> RegexMatches(Regex regex, string text)
    {
        for (var m = regex.Match(text); m.Success; m = m.NextMatch())
        {
            yield return (m.Index, m.Index + m.Length);
        }
    }

    /// <summary>How matched spans combine with their neighbours (the tokenizers library's SplitDelimiterBehavior).</summary>
    internal enum SplitBehavior
    {
        Removed,
        Isolated,
        MergedWithPrevious,
        MergedWithNext,
        Contiguous,
    }

    internal sealed class SequencePreTokenizer(IReadOnlyList<TextPreTokenizer> parts) : TextPreTokenizer
    {
        public override bool IsByteLevel => parts.Count > 0 && parts[^1].IsByteLevel;

        public IReadOnlyList<TextPreTokenizer> Parts => parts;

        public override void PreTokenize(List<PreToken> pieces)
        {
            foreach (var part in parts)
            {
                part.PreTokenize(pieces);
            }
        }
    }

    internal sealed class SplitPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert) : TextPreTokenizer
    {
        public Regex Pattern => pattern;

        public bool IsIsolatedMatches => behavior == SplitBehavior.Isolated && !invert;

        public override void PreTokenize(List<PreToken> pieces) => SplitEach(pieces, text => RegexMatches(pattern, text), behavior, invert);
    }

    internal sealed partial class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : TextPreTokenizer
    {
        public override bool IsByteLevel => true;

        public bool AddPrefixSpace => addPrefixSpace;

        public bool UseRegex => useRegex;

        public override void PreTokenize(List<PreToken> pieces)
        {
            if (addPrefixSpace)
            {
                for (var i = 0; i < pieces.Count; i++)
                {
                    if (!pieces[i].Text.StartsWith(' '))
                    {
                        pieces[i] = pieces[i] with { Text = " " + pieces[i].Text };
                    }
                }
            }

            if (useRegex)
            {
                SplitEach(pieces, text => RegexMatches(Gpt2Pattern(), text), SplitBehavior.Isolated, invert: false);
            }
        }

        // GPT-2's pre-tokenizer pattern, which ByteLevel uses when use_regex is set.
        [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant)]
        private static partial Regex Gpt2Pattern();
    }

    private sealed class MetaspacePreTokenizer(char replacement, MetaspacePreTokenizer.Prepend prepend, bool split) : TextPreTokenizer
    {
        public enum Prepend
        {
            Always,
            First,
            Never,
        }

        public static MetaspacePreTokenizer Create(JsonElement element, string source)
        {
            var replacement = HuggingFaceJson.String(element, "replacement", source);
            if (replacement.Length != 1)
            {
                throw new NotSupportedException($"{source}: Metaspace replacement must be one character, got \"{replacement}\".");
            }

            // Older files say add_prefix_space instead of prepend_scheme.
            var scheme = HuggingFaceJson.OptionalString(element, "prepend_scheme")
                         ?? (HuggingFaceJson.Bool(element, "add_prefix_space", true) ? "always" : "never");
            var prepend = scheme switch
            {
                "always" => Prepend.Always,
                "first" => Prepend.First,
                "never" => Prepend.Never,
                _ => throw new NotSupportedException($"{source}: Metaspace prepend_scheme \"{scheme}\" is not supported (always, first, never)."),
            };
            return new MetaspacePreTokenizer(replacement[0], prepend, HuggingFaceJson.Bool(element, "split", true));
        }

        public override void PreTokenize(List<PreToken> pieces)
        {
            for (var i = 0; i < pieces.Count; i++)
            {
                var text = pieces[i].Text.Replace(' ', replacement);
                var add = prepend == Prepend.Always || (prepend == Prepend.First && pieces[i].AtStart);
                if (add && !text.StartsWith(replacement))
                {
                    text = replacement + text;
                }

                pieces[i] = pieces[i] with { Text = text };
            }

            if (split)
            {
                SplitEach(pieces, text => CharMatches(text, c => c == replacement), SplitBehavior.MergedWithNext, invert: false);
            }
        }
    }

    private sealed class DigitsPreTokenizer(bool individualDigits) : TextPreTokenizer
    {
        public override void PreTokenize(List<PreToken> pieces)
            => SplitEach(pieces, text => CharMatches(text, char.IsNumber), individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, invert: false);
    }

    private static IEnumerable<(int Start, int End)> CharMatches(string text, Func<char, bool> predicate)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (predicate(text[i]))
            {
                yield return (i, i + 1);
            }
        }
    }
}
