using LoQT.Native;
using TorchSharp;

namespace LoQT.Tests.Native;

public class LibTorchTests
{
    private static string LoadedLibrary =>
        LibTorch.EnsureLoaded() ?? throw new InvalidOperationException("libLibTorchSharp.so was not found beside the tests.");

    [Fact]
    public void MatrixProduct_RunsOnTheCpuBackend()
    {
        LibTorch.EnsureLoaded();
        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }, 2, 2);
        using var b = torch.tensor(new float[] { 5, 6, 7, 8 }, 2, 2);
        using var c = a.matmul(b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, c.data<float>().ToArray());
    }

    [Fact]
    public void LoadedLibrary_HasNoStrongRequirementOfTheMissingVersion()
    {
        var requirements = ElfVersionRequirements.Read(File.ReadAllBytes(LoadedLibrary), LoadedLibrary);
        Assert.Contains(requirements, r => r.Library == "libstdc++.so.6");
        Assert.DoesNotContain(requirements, r => r.Version == LibTorch.MissingVersion && !r.IsWeak && !SystemProvides(r.Version));
    }

    [Fact]
    public void MarkWeak_ChangesOnlyTheFlagsOfTheNamedVersion()
    {
        var bytes = File.ReadAllBytes(LoadedLibrary);
        var target = ElfVersionRequirements.Read(bytes, LoadedLibrary).Single(r => r.Version == LibTorch.MissingVersion);
        bytes[target.FlagsOffset] &= unchecked((byte)~ElfVersionRequirements.WeakFlag); // as shipped in the package
        var before = (byte[])bytes.Clone();

        Assert.True(ElfVersionRequirements.MarkWeak(bytes, LibTorch.MissingVersion, LoadedLibrary));

        var changed = Enumerable.Range(0, bytes.Length).Where(i => bytes[i] != before[i]).ToArray();
        Assert.Equal([target.FlagsOffset], changed.Select(i => (long)i));
        Assert.True(ElfVersionRequirements.Read(bytes, LoadedLibrary).Single(r => r.Version == LibTorch.MissingVersion).IsWeak);
        Assert.All(ElfVersionRequirements.Read(bytes, LoadedLibrary).Where(r => r.Version != LibTorch.MissingVersion),
            r => Assert.Equal(ElfVersionRequirements.Read(before, LoadedLibrary).Single(o => o.Version == r.Version && o.Library == r.Library).Flags, r.Flags));
    }

    [Fact]
    public void MarkWeak_ReturnsFalseWhenTheVersionIsNotRequired()
    {
        var bytes = File.ReadAllBytes(LoadedLibrary);
        Assert.False(ElfVersionRequirements.MarkWeak(bytes, "GLIBCXX_99.0", LoadedLibrary));
    }

    [Fact]
    public void Read_RejectsAFileThatIsNotElf()
    {
        var error = Assert.Throws<InvalidDataException>(() => ElfVersionRequirements.Read("not an elf file at all, just text."u8, "notes.txt"));
        Assert.Contains("notes.txt", error.Message);
    }

    private static bool SystemProvides(string version) =>
        File.Exists("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
        && System.Text.Encoding.ASCII.GetString(File.ReadAllBytes("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")).Contains(version, StringComparison.Ordinal);
}
