using System.Runtime.InteropServices;

namespace LoQT.Native;

/// <summary>
/// Tunes glibc's <c>malloc</c>, which libtorch's CPU allocator uses, so that memory a training step frees goes back
/// to the system instead of staying in the process (and in its resident set) until the end.
/// </summary>
/// <remarks>
/// <para>
/// glibc serves allocations of at least <c>M_MMAP_THRESHOLD</c> bytes with their own mapping, returned on free. By
/// default that threshold starts at 128 KiB but grows to the size of every mapped block that is freed (up to 32 MiB):
/// after one step, the activations and dequantized weights of the next come from the heap, whose freed space glibc keeps.
/// The resident set then grows step after step by about the size of a step's transients (measured for the 20m
/// preset, seq 256, 8-bit AdamW, per-layer: peak RSS 719 MiB after 4 steps and still growing, against 512 MiB with
/// the threshold fixed, where it stays). Setting the threshold explicitly turns that growth off.
/// </para>
/// <para>
/// A process-wide setting, so the library never applies it by itself: the <c>loqt</c> tool does at start-up, and an
/// application that trains can. An explicit <c>MALLOC_MMAP_THRESHOLD_</c> in the environment is left alone.
/// </para>
/// </remarks>
public static class NativeAllocator
{
    /// <summary>The threshold set: glibc's initial default, kept from growing.</summary>
    public const int MmapThresholdBytes = 128 * 1024;

    private const int MallocOptionMmapThreshold = -3; // M_MMAP_THRESHOLD in <malloc.h>

    /// <summary>
    /// Fixes glibc's mmap threshold at <see cref="MmapThresholdBytes"/> (see the remarks). Call it early, before
    /// large tensors exist. Does nothing off Linux, without glibc, or when the environment sets the threshold.
    /// </summary>
    /// <returns>Whether the setting was applied.</returns>
    public static bool ReturnFreedMemoryToSystem()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null)
        {
            return false;
        }

        if (!NativeLibrary.TryLoad("libc.so.6", out var libc))
        {
            return false;
        }

        if (!NativeLibrary.TryGetExport(libc, "mallopt", out var mallopt))
        {
            return false;
        }

        unsafe
        {
            return ((delegate* unmanaged<int, int, int>)mallopt)(MallocOptionMmapThreshold, MmapThresholdBytes) == 1;
        }
    }
}
