using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LoQT.Data;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> decoder: turns the token strings of a sequence back into text.
/// Supported: Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace.
/// </summary>
internal abstract class TokenDecoder
{
    public const string Supported = "Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace";

    /// <summary>Rewrites the list of token strings (the tokenizers library's decode_chain); the text is their concatenation.</summary>
    public abstract List<string> DecodeChain(List<string> tokens);

    public static TokenDecoder? FromJson(JsonElement element, string source)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var type = HuggingFaceJson.TypeOf(element, "decoder", source);
        return type switch
        {
            "Sequence" => new SequenceDecoder(
                [.. HuggingFaceJson.Array(element, "decoders", source).Select(e => FromJson(e, source)).OfType<TokenDecoder>()]),
            "Replace" => HuggingFaceJson.LiteralPattern(element) is { Length: > 0 } literal
                ? new LiteralReplaceDecoder(literal, HuggingFaceJson.String(element, "content", source))
                : new ReplaceDecoder(HuggingFaceJson.Pattern(element, source), HuggingFaceJson.String(element, "content", source)),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => new StripDecoder(
                HuggingFaceJson.String(element, "content", source),
                HuggingFaceJson.Int(element, "start", 0),
                HuggingFaceJson.Int(element, "stop", 0)),
            "ByteLevel" => new ByteLevelDecoder(),
            "Metaspace" => MetaspaceDecoder.Create(element, source),
            _ => throw new NotSupportedException($"{source}: decoder \"{type}\" is not supported (supported: {Supported})."),
        };
    }

    private sealed class SequenceDecoder(IReadOnlyList<TokenDecoder> parts) : TokenDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            foreach (var part in parts)
            {
                tokens = part.DecodeChain(tokens);
            }

            return tokens;
        }
    }

    private sealed class ReplaceDecoder(Regex pattern, string content) : TokenDecoder
    {
        private readonly string _replacement = content.Replace("$", "$$", StringComparison.Ordinal);

        public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(t => pattern.Replace(t, _replacement));
    }

    private sealed class LiteralReplaceDecoder(string pattern, string content) : TokenDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(t => t.Replace(pattern, content, StringComparison.Ordinal));
    }

    // Runs of <0xNN> tokens become the text they encode; a run that is not valid UTF-8 becomes one U+FFFD per byte.
    private sealed class ByteFallbackDecoder : TokenDecoder
    {
        private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

        public override List<string> DecodeChain(List<string> tokens)
        {
            var result = new List<string>(tokens.Count);
            var pending = new List<byte>();
            foreach (var token in tokens)
            {
                if (TryParseByteToken(token, out var b))
                {
                    pending.Add(b);
                    continue;
                }

                Flush(pending, result);
                result.Add(token);
            }

            Flush(pending, result);
            return result;
        }

        private static void Flush(List<byte> pending, List<string> result)
        {
            if (pending.Count == 0)
            {
                return;
            }

            try
            {
                result.Add(StrictUtf8.GetString(pending.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                result.AddRange(Enumerable.Repeat("\uFFFD", pending.Count));
            }

            pending.Clear();
        }

        private static bool TryParseByteToken(string token, out byte value)
        {
            value = 0;
            return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                   && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        }
    }

    private sealed class FuseDecoder : TokenDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
    }

    // Removes up to `start` leading and `stop` trailing copies of `content` from each token.
    private sealed class StripDecoder(string content, int start, int stop) : TokenDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(Strip);

        private string Strip(string token)
        {
            if (content.Length == 0)
            {
                return token;
            }

            var from = 0;
            for (var i = 0; i < start && token.AsSpan(from).StartsWith(content, StringComparison.Ordinal); i++)
            {
                from += content.Length;
            }

            var to = token.Length;
            for (var i = 0; i < stop && to - content.Length >= from && token.AsSpan(from, to - from).EndsWith(content, StringComparison.Ordinal); i++)
            {
                to -= content.Length;
            }

            return token[from..to];
        }
    }

    private sealed class ByteLevelDecoder : TokenDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            var bytes = new List<byte>();
            foreach (var token in tokens)
            {
                ByteLevelAlphabet.AppendBytes(token, bytes);
            }

            // Invalid UTF-8 (a sequence cut inside a character) decodes to U+FFFD, like from_utf8_lossy.
            return [Encoding.UTF8.GetString(bytes.ToArray())];
        }
    }

    private sealed class MetaspaceDecoder(char replacement, bool stripFirstSpace) : TokenDecoder
    {
        public static MetaspaceDecoder Create(JsonElement element, string source)
        {
            var replacement = HuggingFaceJson.String(element, "replacement", source);
            if (replacement.Length != 1)
            {
                throw new NotSupportedException($"{source}: Metaspace replacement must be one character, got \"{replacement}\".");
            }

            var scheme = HuggingFaceJson.OptionalString(element, "prepend_scheme")
                         ?? (HuggingFaceJson.Bool(element, "add_prefix_space", true) ? "always" : "never");
            return new MetaspaceDecoder(replacement[0], scheme != "never");
        }

        public override List<string> DecodeChain(List<string> tokens)
        {
            var result = new List<string>(tokens.Count);
            for (var i = 0; i < tokens.Count; i++)
            {
                var text = tokens[i].Replace(replacement, ' ');
                if (i == 0 && stripFirstSpace && text.StartsWith(' '))
                {
                    text = text[1..];
                }

                result.Add(text);
            }

            return result;
        }
    }
}
