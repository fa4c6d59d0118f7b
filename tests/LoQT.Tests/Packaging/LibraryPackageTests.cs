using System.IO.Compression;
using System.Xml.Linq;

namespace LoQT.Tests.Packaging;

/// <summary>What the LoQT and LoQT.Build packages hold and depend on.</summary>
[Collection(PackagingCollection.Name)]
public sealed class LibraryPackageTests(PackagedLoqt packages)
{
    [Fact]
    public async Task LibraryPackage_DependsOnTorchSharpButLeavesTheBackendToTheApplication()
    {
        await packages.EnsureLibraryPackagesAsync();

        using var package = ZipFile.OpenRead(packages.PackagePath("LoQT"));
        var dependencies = Nuspec(package).Descendants().Where(e => e.Name.LocalName == "dependency").Select(d => d.Attribute("id")!.Value).ToList();

        Assert.Contains("TorchSharp", dependencies);
        Assert.DoesNotContain(dependencies, d => d.StartsWith("TorchSharp-", StringComparison.Ordinal) || d.StartsWith("libtorch", StringComparison.Ordinal));
        Assert.Contains(package.Entries, e => e.FullName == "lib/net10.0/LoQT.dll");
        Assert.Contains(package.Entries, e => e.FullName == "lib/net10.0/LoQT.xml");
    }

    [Fact]
    public async Task BuildPackage_IsADevelopmentDependencyWithPropsAndTargetsOnly()
    {
        await packages.EnsureLibraryPackagesAsync();

        using var package = ZipFile.OpenRead(packages.PackagePath("LoQT.Build"));
        var nuspec = Nuspec(package);

        Assert.Equal("true", nuspec.Descendants().Single(e => e.Name.LocalName == "developmentDependency").Value);
        Assert.DoesNotContain(nuspec.Descendants(), e => e.Name.LocalName == "dependency");
        Assert.Contains(package.Entries, e => e.FullName == "build/LoQT.Build.props");
        Assert.Contains(package.Entries, e => e.FullName == "build/LoQT.Build.targets");
        Assert.DoesNotContain(package.Entries, e => e.FullName.StartsWith("lib/", StringComparison.Ordinal));
    }

    private static XDocument Nuspec(ZipArchive package)
    {
        using var stream = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        return XDocument.Load(stream);
    }
}
