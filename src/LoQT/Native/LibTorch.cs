using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace LoQT.Native;

/// <summary>
/// Makes TorchSharp's native library load on systems whose libstdc++ is older than the one it was built with
/// (Debian 12, Ubuntu 22.04: no <c>GLIBCXX_3.4.32</c>).
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp 0.107's <c>libLibTorchSharp.so</c> requires <c>GLIBCXX_3.4.32</c> only for
/// <c>std::ios_base_library_init()</c>, which GCC 13's <c>&lt;iostream&gt;</c> references without a relocation:
/// nothing calls it. Marking that one version requirement weak lets glibc's loader continue without it.
/// </para>
/// <para>
/// The edit is made on the application's own copy of the library (its build or tool-store output), never in the
/// NuGet package cache; when the only copy is in the cache (or read-only), a private patched copy under
/// <c>$XDG_CACHE_HOME/loqt/native</c> is used instead. What was done is said once, on stderr.
/// </para>
/// </remarks>
public static class LibTorch
{
    /// <summary>The version requirement that the patch marks weak.</summary>
    public const string MissingVersion = "GLIBCXX_3.4.32";

    private const string LibraryFileName = "libLibTorchSharp.so";

    private static readonly Lazy<string?> LoadedFrom = new(LoadOnce, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Loads libtorch through TorchSharp's native library, patching the library first when this system needs it.
    /// Safe to call many times and from many threads; the work happens once per process.
    /// </summary>
    /// <returns>The path of the native library that was loaded, or null where nothing needed doing (not Linux, or not found).</returns>
    /// <exception cref="InvalidOperationException">The library could not be loaded even after the patch.</exception>
    public static string? EnsureLoaded() => LoadedFrom.Value;

    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "TorchSharp probes for its native library in its own static constructor, which no resolver intercepts: the patch must be in place before any TorchSharp type is touched through this library.")]
    internal static void InitializeModule()
    {
        TensorHugePages.EnableUnlessSet();
        try
        {
            EnsureLoaded();
        }
        catch (InvalidOperationException e)
        {
            // Not fatal here: code that never touches torch (the Hub client) still works. The cached failure is
            // thrown again by EnsureLoaded(), and TorchSharp fails on first use.
            Console.Error.WriteLine("loqt: warning: " + e.Message);
        }
    }

    private static IntPtr ResolveFromPrivateCopy(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var path = libraryName == "LibTorchSharp" ? LoadedFrom.Value : null;
        return path is not null && NativeLibrary.TryLoad(path, out var handle) ? handle : IntPtr.Zero;
    }

    private static string? LoadOnce()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var original = FindLibrary();
        if (original is null)
        {
            return null;
        }

        if (NativeLibrary.TryLoad(original, out _))
        {
            return original;
        }

        var target = WritePatchedLibrary(original, CacheRoot(), Console.Error)
            ?? throw LoadFailure(original, "and it does not require " + MissingVersion + ", so the known fix does not apply");
        if (target != original)
        {
            // The private copy's $ORIGIN runpath does not reach libtorch: load its dependencies from the original folder first.
            var folder = Path.GetDirectoryName(original)!;
            foreach (var dependency in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
            {
                var candidate = Path.Combine(folder, dependency);
                if (File.Exists(candidate))
                {
                    NativeLibrary.TryLoad(candidate, out _);
                }
            }

            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, ResolveFromPrivateCopy);
        }

        if (!NativeLibrary.TryLoad(target, out _))
        {
            throw LoadFailure(target, "even after marking " + MissingVersion + " weak");
        }

        return target;
    }

    /// <summary>
    /// Writes a copy of <paramref name="original"/> with the <see cref="MissingVersion"/> requirement marked weak: over the
    /// original when it is the application's own writable copy, else (NuGet package cache, read-only folder) under
    /// <paramref name="privateCacheRoot"/><c>/loqt/native/</c>. Says on <paramref name="log"/>, in one line, what it did.
    /// </summary>
    /// <returns>The patched file, or null when the library does not require that version (nothing is written).</returns>
    internal static string? WritePatchedLibrary(string original, string privateCacheRoot, TextWriter log)
    {
        var bytes = File.ReadAllBytes(original);
        if (!ElfVersionRequirements.MarkWeak(bytes, MissingVersion, original))
        {
            return null;
        }

        var target = CanPatchInPlace(original) ? original : PrivateCopyPath(original, privateCacheRoot);
        WriteAtomically(target, bytes);
        log.WriteLine(
            $"loqt: {LibraryFileName} requires {MissingVersion}, which this system's libstdc++ lacks; " +
            $"marked that requirement weak in {target} (only std::ios_base_library_init uses it, and nothing calls it).");
        return target;
    }

    private static string CacheRoot()
    {
        var cacheRoot = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        return string.IsNullOrEmpty(cacheRoot)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache")
            : cacheRoot;
    }

    private static string? FindLibrary()
    {
        var folders = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirectories)
        {
            folders.AddRange(searchDirectories.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        }

        folders.Add(AppContext.BaseDirectory);
        folders.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"));
        var torchSharpFolder = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        if (!string.IsNullOrEmpty(torchSharpFolder))
        {
            folders.Add(torchSharpFolder);
            folders.Add(Path.GetFullPath(Path.Combine(torchSharpFolder, "..", "..", "runtimes", "linux-x64", "native")));
        }

        return folders.Select(f => Path.Combine(f, LibraryFileName)).FirstOrDefault(File.Exists);
    }

    private static bool CanPatchInPlace(string path)
    {
        var full = Path.GetFullPath(path);
        var nugetRoot = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        var inNuGetCache = full.Contains($"{Path.DirectorySeparatorChar}.nuget{Path.DirectorySeparatorChar}packages{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
            || (!string.IsNullOrEmpty(nugetRoot) && full.StartsWith(Path.GetFullPath(nugetRoot), StringComparison.Ordinal));
        if (inNuGetCache)
        {
            return false;
        }

        try
        {
            var probe = Path.Combine(Path.GetDirectoryName(full)!, $".loqt-write-probe-{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string PrivateCopyPath(string original, string cacheRoot)
    {
        var info = new FileInfo(original);
        var key = FormattableString.Invariant($"{info.Length}-{info.LastWriteTimeUtc.Ticks}");
        return Path.Combine(cacheRoot, "loqt", "native", key, LibraryFileName);
    }

    private static void WriteAtomically(string target, byte[] bytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temp = target + $".{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, target, overwrite: true);
    }

    private static InvalidOperationException LoadFailure(string path, string detail)
    {
        var error = Marshal.GetLastPInvokeErrorMessage();
        return new InvalidOperationException($"Could not load {path} ({detail}). Loader said: {error}");
    }
}
