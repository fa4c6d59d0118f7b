namespace LoQT.Tests.Support;

/// <summary>Locates the workplace's <c>shared/</c> folder (fixtures and data) that sits beside the checkout.</summary>
internal static class TestPaths
{
    private static readonly Lazy<string> SharedDir = new(FindShared);

    /// <summary><c>shared/</c>: from <c>LOQT_SHARED</c>, else the nearest ancestor of the test binaries that has <c>shared/fixtures</c>.</summary>
    public static string Shared => SharedDir.Value;

    public static string Fixtures => Path.Combine(Shared, "fixtures");

    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    private static string FindShared()
    {
        var fromEnv = Environment.GetEnvironmentVariable("LOQT_SHARED");
        if (!string.IsNullOrEmpty(fromEnv))
        {
            return fromEnv;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "fixtures")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException(
            "Could not find shared/fixtures above " + AppContext.BaseDirectory + "; set LOQT_SHARED.");
    }
}
