using System.IO.Compression;
using System.Xml.Linq;
using LoQT.Tests.Support;

namespace LoQT.Tests.Packaging;

/// <summary>
/// The <c>loqt</c> tool as users get it: packed, installed with <c>dotnet tool install</c> (into a tool path, and
/// through a local tool manifest), and running a real model on libtorch from its install location.
/// </summary>
[Collection(PackagingCollection.Name)]
public sealed class ToolPackageTests(PackagedLoqt packages)
{
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(3);

    // A few tokens from the tiny fixture model: loading it and every forward pass are libtorch calls.
    private static readonly string[] Generate =
        ["generate", "--model", TestPaths.Fixture("tiny-llama"), "--prompt", "Hello", "--max-new-tokens", "4", "--temperature", "0"];

    [Fact]
    public async Task ToolPackage_IsAPointerToOnePackagePerPlatform()
    {
        await packages.EnsureToolPackagesAsync();

        using var pointer = ZipFile.OpenRead(packages.PackagePath("LoQT.Tool"));
        var settings = XDocument.Load(pointer.Entries.Single(e => e.Name == "DotnetToolSettings.xml").Open());
        var command = settings.Descendants("Command").Single();
        Assert.Equal("loqt", command.Attribute("Name")?.Value);
        var platforms = settings.Descendants("RuntimeIdentifierPackage").Select(p => (p.Attribute("RuntimeIdentifier")?.Value, p.Attribute("Id")?.Value)).ToList();
        Assert.Contains((PackagedLoqt.ToolRuntimeIdentifier, "LoQT.Tool." + PackagedLoqt.ToolRuntimeIdentifier), platforms);
        Assert.DoesNotContain(pointer.Entries, e => e.Name.EndsWith(".dll", StringComparison.Ordinal) || e.Name.EndsWith(".so", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PlatformPackage_CarriesLibTorchButNotItsPythonBindings()
    {
        await packages.EnsureToolPackagesAsync();

        using var platform = ZipFile.OpenRead(packages.PackagePath("LoQT.Tool." + PackagedLoqt.ToolRuntimeIdentifier));
        var names = platform.Entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("LoQT.Tool.dll", names);
        Assert.Contains("LoQT.dll", names);
        Assert.Contains("libLibTorchSharp.so", names);
        Assert.Contains("libtorch_cpu.so", names);
        Assert.DoesNotContain("libtorch_python.so", names);
        Assert.DoesNotContain("libtorchbind_test.so", names);
    }

    [Fact]
    public async Task ToolInstall_WithToolPath_RunsAModelFromTheToolStore()
    {
        await packages.EnsureToolPackagesAsync();
        var toolPath = packages.NewFolder("tool-path");

        var install = await packages.DotnetAsync(packages.Work, InstallTimeout,
            "tool", "install", "LoQT.Tool", "--version", packages.Version, "--tool-path", toolPath);
        Assert.True(install.ExitCode == 0, install.ToString());

        var generate = await DotnetCommand.RunProgramAsync(Path.Combine(toolPath, "loqt"), packages.Work, packages.CommandEnvironment, InstallTimeout, Generate);
        Assert.True(generate.ExitCode == 0, generate.ToString());
        Assert.Contains("loaded " + TestPaths.Fixture("tiny-llama") + ": 2 layers", generate.Output);
        // Where this system's libstdc++ lacks GLIBCXX_3.4.32, the library patched the tool's own copy in the tool store.
        AssertPatchedUnder(generate, Path.Combine(toolPath, ".store"));
    }

    [Fact]
    public async Task LocalManifest_RestoresTheToolForDotnetLoqt()
    {
        await packages.EnsureToolPackagesAsync();
        var project = packages.NewFolder("manifest");
        packages.WriteToolManifest(project);

        var restore = await packages.DotnetAsync(project, InstallTimeout, "tool", "restore");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        var generate = await packages.DotnetAsync(project, InstallTimeout, ["loqt", .. Generate]);

        Assert.True(generate.ExitCode == 0, generate.ToString());
        Assert.Contains("loaded " + TestPaths.Fixture("tiny-llama") + ": 2 layers", generate.Output);
        // A local tool lives in the NuGet packages folder, which the library never edits: it patches a private copy.
        AssertPatchedUnder(generate, Path.Combine(packages.CommandEnvironment["XDG_CACHE_HOME"], "loqt", "native"));
    }

    private static void AssertPatchedUnder(CommandResult run, string folder)
    {
        const string marker = "marked that requirement weak in ";
        var line = run.Output.Split('\n').FirstOrDefault(l => l.Contains(marker, StringComparison.Ordinal));
        if (line is not null)
        {
            Assert.StartsWith(folder, line[(line.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..]);
        }
    }
}
