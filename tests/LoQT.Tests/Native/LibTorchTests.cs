using LoQT.Native;
using LoQT.Tests.SafeTensors;
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

    [Fact]
    public void Patch_OfTheCopyInTheNuGetCache_WritesAPrivateCopy_AndLeavesTheCacheUntouched()
    {
        using var scratch = new ScratchFolder();
        var inCache = Path.Combine(scratch.Path, ".nuget", "packages", "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        var shipped = WriteAsShipped(inCache);
        var written = File.GetLastWriteTimeUtc(inCache);
        var privateRoot = Path.Combine(scratch.Path, "xdg-cache");
        using var log = new StringWriter();

        var target = LibTorch.WritePatchedLibrary(inCache, privateRoot, log);

        Assert.Equal(shipped, File.ReadAllBytes(inCache));
        Assert.Equal(written, File.GetLastWriteTimeUtc(inCache));
        Assert.NotNull(target);
        Assert.StartsWith(Path.Combine(privateRoot, "loqt", "native") + Path.DirectorySeparatorChar, target, StringComparison.Ordinal);
        Assert.True(MissingVersionIsWeak(target));
        Assert.Equal([$"loqt: libLibTorchSharp.so requires {LibTorch.MissingVersion}, which this system's libstdc++ lacks; marked that requirement weak in {target} (only std::ios_base_library_init uses it, and nothing calls it)."],
            log.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Patch_OfTheApplicationsOwnCopy_EditsItInPlace_AndSaysSoOnce()
    {
        using var scratch = new ScratchFolder();
        var appCopy = Path.Combine(scratch.Path, "bin", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        WriteAsShipped(appCopy);
        using var log = new StringWriter();

        var target = LibTorch.WritePatchedLibrary(appCopy, Path.Combine(scratch.Path, "xdg-cache"), log);

        Assert.Equal(appCopy, target);
        Assert.True(MissingVersionIsWeak(appCopy));
        Assert.False(Directory.Exists(Path.Combine(scratch.Path, "xdg-cache")));
        Assert.Single(log.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Patch_OfALibraryThatIsAlreadyFixed_WritesAndSaysNothing()
    {
        using var scratch = new ScratchFolder();
        var fixedCopy = Path.Combine(scratch.Path, "libLibTorchSharp.so");
        File.Copy(LoadedLibrary, fixedCopy);
        Assert.True(MissingVersionIsWeak(fixedCopy));
        using var log = new StringWriter();

        Assert.Null(LibTorch.WritePatchedLibrary(fixedCopy, Path.Combine(scratch.Path, "xdg-cache"), log));
        Assert.Empty(log.ToString());
    }

    [Fact]
    public void TheNuGetPackageCopy_StillHasItsOriginalRequirement_AfterEveryRunOfThisSuite()
    {
        // The tests (and the tool) load libtorch through the patch; the package in the NuGet cache must stay as shipped.
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } custom
            ? custom
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var packaged = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(packaged), $"TorchSharp's native library is not where NuGet restores it: {packaged}");

        Assert.False(MissingVersionIsWeak(packaged));
        Assert.NotEqual(Path.GetFullPath(packaged), Path.GetFullPath(LoadedLibrary));
    }

    private static byte[] WriteAsShipped(string path)
    {
        var bytes = File.ReadAllBytes(LoadedLibrary);
        var requirement = ElfVersionRequirements.Read(bytes, LoadedLibrary).Single(r => r.Version == LibTorch.MissingVersion);
        bytes[requirement.FlagsOffset] &= unchecked((byte)~ElfVersionRequirements.WeakFlag);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return bytes;
    }

    private static bool MissingVersionIsWeak(string path) =>
        ElfVersionRequirements.Read(File.ReadAllBytes(path), path).Single(r => r.Version == LibTorch.MissingVersion).IsWeak;

    private static bool SystemProvides(string version) =>
        File.Exists("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
        && System.Text.Encoding.ASCII.GetString(File.ReadAllBytes("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")).Contains(version, StringComparison.Ordinal);
}
