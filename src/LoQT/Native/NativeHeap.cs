using System.Runtime.InteropServices;

namespace LoQT.Native;

/// <summary>
/// The C heap that libtorch allocates tensors from. glibc keeps freed blocks for reuse, and after the first large block
/// is freed it serves blocks up to that size from its arenas instead of fresh mappings, so a loop that allocates and
/// frees one layer-sized tensor after another holds several layers' worth of free memory resident. <see cref="Trim"/>
/// hands it back.
/// </summary>
internal static partial class NativeHeap
{
    /// <summary>Returns the heap's free memory to the operating system (glibc's <c>malloc_trim(0)</c>); does nothing elsewhere.</summary>
    public static void Trim()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = MallocTrim(0);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc (e.g. musl): nothing to trim this way.
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);
}
