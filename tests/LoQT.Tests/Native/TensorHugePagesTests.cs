using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using LoQT.Native;
using static TorchSharp.torch;

namespace LoQT.Tests.Native;

/// <summary>Large CPU tensors come in transparent huge pages, which spares a page fault for every 4 KiB touched.</summary>
public sealed partial class TensorHugePagesTests
{
    public TensorHugePagesTests() => LibTorch.EnsureLoaded();

    [Fact]
    public void AfterLibTorchLoads_TheNativeEnvironmentAsksForHugePages()
    {
        // The process started without it (the test host does not set it), so the value is the one LoQT set.
        Assert.Equal("1", Marshal.PtrToStringUTF8(GetEnv(TensorHugePages.Variable)));
    }

    [Fact]
    public void LargeTensor_IsBackedByHugePages()
    {
        // Only the kernel's "madvise" mode tells the two apart: "always" gives every mapping huge pages, "never" none.
        var mode = File.Exists(ThpModeFile) ? File.ReadAllText(ThpModeFile) : string.Empty;
        if (!mode.Contains("[madvise]", StringComparison.Ordinal))
        {
            return;
        }

        using var tensor = ones(64L << 20, dtype: ScalarType.Float32); // 256 MiB, every page touched
        // Nothing else in the process madvises huge pages, so huge pages in a mapping of this size are libtorch's.
        var largest = HugePagesPerMapping().Where(m => m.SizeKiB >= 256 << 10).Select(m => m.AnonHugeKiB).DefaultIfEmpty(0).Max();
        Assert.True(largest >= 128 << 10, $"no mapping of 256 MiB or more holds 128 MiB of huge pages (best: {largest} KiB)");
    }

    private const string ThpModeFile = "/sys/kernel/mm/transparent_hugepage/enabled";

    private static IEnumerable<(long SizeKiB, long AnonHugeKiB)> HugePagesPerMapping()
    {
        long size = 0;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var match = SmapsField().Match(line);
            if (!match.Success)
            {
                continue;
            }

            var kib = long.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (match.Groups[1].Value == "Size")
            {
                size = kib;
            }
            else
            {
                yield return (size, kib);
            }
        }
    }

    [GeneratedRegex(@"^(Size|AnonHugePages):\s+(\d+) kB$")]
    private static partial Regex SmapsField();

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnv(string name);
}
