using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace LoQT.Tests.Packaging;

/// <summary>
/// The repository's packages, packed once for the packaging tests: <c>LoQT</c>, <c>LoQT.Build</c> and
/// <c>LoQT.Templates</c> (from the build these tests run in), and on demand <c>LoQT.Tool</c> for this machine's platform
/// (slow: libtorch is ~480 MB to compress). They go to a local feed under a temporary root, at a version of their own
/// (<c>0.1.0-test.…</c>) so that no package cache anywhere can hold a stale copy, and every command the tests run sees
/// a private NuGet packages folder that falls back, read-only, on the machine's own (TorchSharp and libtorch come from
/// there, as the solution's restore left them).
/// </summary>
public sealed class PackagedLoqt : IAsyncLifetime
{
    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(5);

    private readonly Lazy<Task> libraryPackages;
    private readonly Lazy<Task> toolPackages;
    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> shared = new(StringComparer.Ordinal);

    public PackagedLoqt()
    {
        RepositoryRoot = FindRepositoryRoot();
        Configuration = typeof(PackagedLoqt).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        var baseVersion = typeof(LoQT.Native.LibTorch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+')[0];
        Version = FormattableString.Invariant($"{baseVersion}-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{System.Environment.ProcessId}");
        Root = Path.Combine(Path.GetTempPath(), "loqt-packaging-" + Guid.NewGuid().ToString("N")[..12]);
        Feed = Path.Combine(Root, "feed");
        Work = Path.Combine(Root, "work");
        Directory.CreateDirectory(Feed);
        Directory.CreateDirectory(Work);
        CommandEnvironment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["NUGET_PACKAGES"] = Path.Combine(Root, "packages"),
            // Where the library puts its patched copy of libLibTorchSharp.so when the tool lives in a package cache.
            ["XDG_CACHE_HOME"] = Path.Combine(Root, "cache"),
            ["HF_HUB_OFFLINE"] = "1",
            ["HF_HOME"] = Path.Combine(Root, "hf"),
        };
        libraryPackages = new(PackLibrariesAsync);
        toolPackages = new(PackToolAsync);
    }

    /// <summary>The checkout: the folder that holds LoQT.sln.</summary>
    public string RepositoryRoot { get; }

    /// <summary>The configuration these tests were built in (the packages are packed from that build).</summary>
    public string Configuration { get; }

    /// <summary>The version every package is packed at.</summary>
    public string Version { get; }

    /// <summary>The temporary root of everything these tests write (deleted at the end).</summary>
    public string Root { get; }

    /// <summary>The local feed the packages are packed into.</summary>
    public string Feed { get; }

    /// <summary>
    /// Where the tests make their projects. Its nuget.config names the feed (before the machine's sources) and the
    /// machine's packages folder as a fallback; empty Directory.Build.* files keep whatever lies above the temporary
    /// folder out of the projects' builds.
    /// </summary>
    public string Work { get; }

    /// <summary>The environment for every command: a private packages folder, caches under <see cref="Root"/>, no Hub access.</summary>
    public IReadOnlyDictionary<string, string> CommandEnvironment { get; }

    /// <summary>The platform the tool is packed for.</summary>
    public static string ToolRuntimeIdentifier => RuntimeInformation.RuntimeIdentifier;

    /// <summary>The path of a package in the feed (after it was packed).</summary>
    public string PackagePath(string id) => Path.Combine(Feed, $"{id}.{Version}.nupkg");

    /// <summary>Packs LoQT, LoQT.Build and LoQT.Templates into the feed (once).</summary>
    public Task EnsureLibraryPackagesAsync() => libraryPackages.Value;

    /// <summary>Packs LoQT.Tool for this platform into the feed (once): the pointer package and the platform's.</summary>
    public Task EnsureToolPackagesAsync() => toolPackages.Value;

    /// <summary>Runs <c>dotnet</c> with <see cref="CommandEnvironment"/> in <paramref name="workingDirectory"/> and fails the test on timeout.</summary>
    public Task<CommandResult> DotnetAsync(string workingDirectory, TimeSpan timeout, params string[] arguments) =>
        DotnetCommand.RunAsync(workingDirectory, CommandEnvironment, timeout, arguments);

    /// <summary>
    /// Something several tests use and that is slow to make (a generated and built project): made by the first test
    /// that asks, once; a failure is every asker's failure.
    /// </summary>
    public Task<string> SharedAsync(string key, Func<Task<string>> create) =>
        shared.GetOrAdd(key, _ => new Lazy<Task<string>>(create)).Value;

    /// <summary>Writes a local tool manifest (dotnet-tools.json) naming the packed LoQT.Tool into <paramref name="folder"/>.</summary>
    public void WriteToolManifest(string folder) =>
        File.WriteAllText(Path.Combine(folder, "dotnet-tools.json"), $$"""
            { "version": 1, "isRoot": true, "tools": { "loqt.tool": { "version": "{{Version}}", "commands": [ "loqt" ], "rollForward": false } } }
            """);

    /// <summary>A new empty folder under <see cref="Work"/>.</summary>
    public string NewFolder(string name)
    {
        var path = Path.Combine(Work, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(path);
        return path;
    }

    public async Task InitializeAsync()
    {
        var globalPackages = await GlobalPackagesFolderAsync();
        File.WriteAllText(Path.Combine(Work, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="loqt-test-feed" value="{Feed}" />
              </packageSources>
              <fallbackPackageFolders>
                <add key="machine" value="{globalPackages}" />
              </fallbackPackageFolders>
            </configuration>
            """);
        foreach (var name in new[] { "Directory.Build.props", "Directory.Build.targets" })
        {
            File.WriteAllText(Path.Combine(Work, name), "<Project><!-- Stops MSBuild's search for this file above the test folder. --></Project>\n");
        }
    }

    public Task DisposeAsync()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file still open (a process killed on timeout): the temporary folder is the OS's to clean.
        }

        return Task.CompletedTask;
    }

    private async Task PackLibrariesAsync()
    {
        // From the build this test run uses (dotnet test builds the solution first): no second compile.
        foreach (var project in new[] { "src/LoQT/LoQT.csproj", "src/LoQT.Build/LoQT.Build.csproj", "templates/LoQT.Templates.csproj" })
        {
            await PackAsync(project, "--no-build");
        }
    }

    private Task PackToolAsync() =>
        // Not --no-build: the platform's package is published from a build for that runtime identifier.
        PackAsync("tool/LoQT.Tool/LoQT.Tool.csproj", "-p:ToolPackageRuntimeIdentifiers=" + ToolRuntimeIdentifier);

    private async Task PackAsync(string project, params string[] extra)
    {
        string[] arguments = ["pack", project, "-c", Configuration, "-o", Feed, "-p:PackageVersion=" + Version, "-nologo", "-tl:off", "-v:m", .. extra];
        var result = await DotnetCommand.RunAsync(RepositoryRoot, new Dictionary<string, string>(), PackTimeout, arguments);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException("Packing failed: " + result);
        }
    }

    private async Task<string> GlobalPackagesFolderAsync()
    {
        var result = await DotnetCommand.RunAsync(RepositoryRoot, new Dictionary<string, string>(), TimeSpan.FromMinutes(1), "nuget", "locals", "global-packages", "--list");
        const string prefix = "global-packages:";
        var line = result.Output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal))
            ?? throw new InvalidOperationException("Could not find the machine's NuGet packages folder: " + result);
        return line[prefix.Length..].Trim();
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LoQT.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("No LoQT.sln above " + AppContext.BaseDirectory + ": the packaging tests pack the repository's projects.");
    }
}
