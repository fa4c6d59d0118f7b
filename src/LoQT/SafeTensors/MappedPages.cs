using System.Runtime.InteropServices;

namespace LoQT.SafeTensors;

/// <summary>
/// Gives back the pages of a read-only file mapping once their bytes have been copied out. The kernel counts touched
/// pages of a mapping in the process's resident set (RSS) until the mapping goes away, so without this, reading every
/// tensor of a 13 GB checkpoint one at a time would still end with 13 GB resident. <c>MADV_DONTNEED</c> on a shared
/// read-only file mapping only drops the process's page-table entries: the data stays in the page cache, and a later
/// read of the same bytes faults them back in.
/// </summary>
internal static partial class MappedPages
{
    private const int MadvDontNeed = 4;
    private static readonly long PageSize = Environment.SystemPageSize;

    /// <summary>Releases the whole pages that lie within [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>).</summary>
    /// <remarks>
    /// Only for ranges of a read-only file mapping that is still mapped (on anonymous memory MADV_DONTNEED zeroes data).
    /// Pages shared with a neighbouring tensor are kept; best effort (a failure only leaves the pages resident).
    /// </remarks>
    public static unsafe void Release(byte* start, long length)
    {
        if (!OperatingSystem.IsLinux() || length <= 0)
        {
            return;
        }

        var first = ((long)start + PageSize - 1) / PageSize * PageSize;
        var end = ((long)start + length) / PageSize * PageSize;
        if (end > first)
        {
            _ = Madvise((nint)first, (nuint)(end - first), MadvDontNeed);
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}
