using LoQT.Native;

namespace LoQT.Tests.Native;

public sealed class NativeAllocatorTests
{
    [Fact]
    public void MmapThreshold_IsSetOnLinuxUnlessTheEnvironmentSetsIt()
    {
        var expected = OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is null;

        Assert.Equal(expected, NativeAllocator.ReturnFreedMemoryToSystem());
    }
}
