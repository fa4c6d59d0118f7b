using System.Collections.Immutable;
using System.Text;

namespace LoQT.Data;

/// <summary>
/// GPT-2's reversible map between bytes and printable characters, which byte-level BPE vocabularies
/// (GPT-2, Llama 3) are written in: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100 upwards in byte order (so a space is <c>Ġ</c> and a newline <c>Ċ</c>).
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly ImmutableArray<char> ByteToChar = BuildByteToChar();
    // Indexed by character; -1 for characters outside the alphabet (all alphabet characters are below U+0144).
    private static readonly ImmutableArray<short> CharToByte = BuildCharToByte();

    /// <summary>The UTF-8 bytes of <paramref name="text"/> written as alphabet characters.</summary>
    public static string Encode(ReadOnlySpan<char> text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text)];
        Encoding.UTF8.GetBytes(text, bytes);
        return string.Create(bytes.Length, bytes, static (chars, b) =>
        {
            for (var i = 0; i < b.Length; i++)
            {
                chars[i] = ByteToChar[b[i]];
            }
        });
    }

    /// <summary>
    /// Appends the bytes a token stands for. A token with a character outside the alphabet (an added token
    /// such as <c>&lt;|eot_id|&gt;</c> is usually inside it, but not always) contributes its own UTF-8 bytes,
    /// as Hugging Face's ByteLevel decoder does.
    /// </summary>
    public static void AppendBytes(string token, List<byte> output)
    {
        var bytes = TryDecode(token);
        output.AddRange(bytes ?? Encoding.UTF8.GetBytes(token));
    }

    /// <summary>The bytes of a token written entirely in the alphabet, or <c>null</c> when it is not.</summary>
    public static byte[]? TryDecode(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
        {
            var c = token[i];
            var b = c < CharToByte.Length ? CharToByte[c] : (short)-1;
            if (b < 0)
            {
                return null;
            }

            bytes[i] = (byte)b;
        }

        return bytes;
    }

    private static ImmutableArray<char> BuildByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }

        return [.. map];
    }

    private static ImmutableArray<short> BuildCharToByte()
    {
        var map = new short[0x144];
        Array.Fill(map, (short)-1);
        for (var b = 0; b < 256; b++)
        {
            map[ByteToChar[b]] = (short)b;
        }

        return [.. map];
    }
}
