namespace LoQT.Tests.Packaging;

/// <summary>
/// The tests that pack the repository and build, install and run what users get (tool, MSBuild targets, template).
/// They share one set of packed outputs and run one after another; they build real projects, so together they take a
/// few minutes (most of it packing the tool, whose libtorch is ~480 MB to compress).
/// </summary>
[CollectionDefinition(Name)]
public sealed class PackagingCollection : ICollectionFixture<PackagedLoqt>
{
    public const string Name = "Packaging";
}
