using System.Buffers.Binary;
using System.Text;

namespace LoQT.Native;

/// <summary>
/// Reads and edits the symbol-version requirements (<c>.gnu.version_r</c>, the ELF "Verneed" table)
/// of a 64-bit little-endian ELF shared library.
/// </summary>
/// <remarks>
/// Only what the libtorch loader needs: list the (library, version, flags) triples and set the
/// <c>VER_FLG_WEAK</c> flag on one of them. glibc's loader treats a missing weak version as non-fatal.
/// </remarks>
public static class ElfVersionRequirements
{
    /// <summary>The <c>VER_FLG_WEAK</c> bit of a Vernaux entry's <c>vna_flags</c>.</summary>
    public const ushort WeakFlag = 0x2;

    private const uint ShtGnuVerneed = 0x6ffffffe;

    /// <summary>One version a library requires from one of its dependencies.</summary>
    /// <param name="Library">The dependency's file name (e.g. <c>libstdc++.so.6</c>).</param>
    /// <param name="Version">The version name (e.g. <c>GLIBCXX_3.4.32</c>).</param>
    /// <param name="Flags">The <c>vna_flags</c> field.</param>
    /// <param name="FlagsOffset">File offset of <c>vna_flags</c>.</param>
    public sealed record Requirement(string Library, string Version, ushort Flags, long FlagsOffset)
    {
        /// <summary>Whether the requirement is marked weak.</summary>
        public bool IsWeak => (Flags & WeakFlag) != 0;
    }

    /// <summary>Lists the version requirements of an ELF image held in memory.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a 64-bit little-endian ELF file or the table is out of range.</exception>
    public static IReadOnlyList<Requirement> Read(ReadOnlySpan<byte> elf, string fileNameForErrors)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
        {
            throw new InvalidDataException($"{fileNameForErrors}: not an ELF file.");
        }

        if (elf[4] != 2 || elf[5] != 1)
        {
            throw new InvalidDataException($"{fileNameForErrors}: only 64-bit little-endian ELF is supported.");
        }

        var shoff = checked((long)BinaryPrimitives.ReadUInt64LittleEndian(elf[0x28..]));
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x3C..]);
        if (shentsize < 64 || shoff < 0 || shoff + ((long)shnum * shentsize) > elf.Length)
        {
            throw new InvalidDataException($"{fileNameForErrors}: section header table lies outside the file.");
        }

        var result = new List<Requirement>();
        for (var i = 0; i < shnum; i++)
        {
            var sh = elf.Slice(checked((int)(shoff + ((long)i * shentsize))), 64);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed)
            {
                continue;
            }

            var offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]);
            var link = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            var count = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]);
            if (link >= shnum)
            {
                throw new InvalidDataException($"{fileNameForErrors}: version table links to a missing string table.");
            }

            var strSh = elf.Slice(checked((int)(shoff + ((long)link * shentsize))), 64);
            var strOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(strSh[0x18..]);
            var strSize = (long)BinaryPrimitives.ReadUInt64LittleEndian(strSh[0x20..]);
            if (strOffset + strSize > elf.Length)
            {
                throw new InvalidDataException($"{fileNameForErrors}: string table lies outside the file.");
            }

            var strings = elf.Slice((int)strOffset, (int)strSize);
            var need = offset;
            for (var n = 0; n < count; n++)
            {
                var entry = elf.Slice(checked((int)need), 16);
                int cnt = BinaryPrimitives.ReadUInt16LittleEndian(entry[2..]);
                var library = ReadString(strings, BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]), fileNameForErrors);
                var aux = need + BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]);
                for (var a = 0; a < cnt; a++)
                {
                    var auxEntry = elf.Slice(checked((int)aux), 16);
                    var flags = BinaryPrimitives.ReadUInt16LittleEndian(auxEntry[4..]);
                    var version = ReadString(strings, BinaryPrimitives.ReadUInt32LittleEndian(auxEntry[8..]), fileNameForErrors);
                    result.Add(new Requirement(library, version, flags, aux + 4));
                    var next = BinaryPrimitives.ReadUInt32LittleEndian(auxEntry[12..]);
                    if (next == 0)
                    {
                        break;
                    }

                    aux += next;
                }

                var nextNeed = BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]);
                if (nextNeed == 0)
                {
                    break;
                }

                need += nextNeed;
            }
        }

        return result;
    }

    /// <summary>Marks the requirement of <paramref name="version"/> weak in the image. Returns false when there is no such (strong) requirement.</summary>
    public static bool MarkWeak(Span<byte> elf, string version, string fileNameForErrors)
    {
        var changed = false;
        foreach (var req in Read(elf, fileNameForErrors))
        {
            if (req.Version == version && !req.IsWeak)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(elf[(int)req.FlagsOffset..], (ushort)(req.Flags | WeakFlag));
                changed = true;
            }
        }

        return changed;
    }

    private static string ReadString(ReadOnlySpan<byte> table, uint index, string file)
    {
        if (index >= table.Length)
        {
            throw new InvalidDataException($"{file}: string index {index} is outside the string table.");
        }

        var rest = table[(int)index..];
        var end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }
}
