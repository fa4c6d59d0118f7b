namespace LoQT.Hub;

/// <summary>What <see cref="HubClient.DownloadSnapshotAsync"/> fetches and where it puts it.</summary>
public sealed record SnapshotDownloadOptions
{
    /// <summary>Branch, tag or commit sha (default <c>main</c>).</summary>
    public string Revision { get; init; } = "main";

    /// <summary>Model, dataset or Space.</summary>
    public HubRepoType RepoType { get; init; } = HubRepoType.Model;

    /// <summary>fnmatch-style globs; when any are given, only matching files are downloaded (see <see cref="HubPathFilter"/>).</summary>
    public IReadOnlyList<string> Include { get; init; } = [];

    /// <summary>fnmatch-style globs of files to skip.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];

    /// <summary>When set, the snapshot's files are also copied (as regular files) into this folder, which is then returned.</summary>
    public string? LocalDir { get; init; }
}
