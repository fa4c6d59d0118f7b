namespace LoQT.Hub;

/// <summary>How <see cref="HubClient.UploadFolderAsync"/> publishes a folder.</summary>
public sealed record UploadFolderOptions
{
    /// <summary>Branch to commit to (default <c>main</c>).</summary>
    public string Revision { get; init; } = "main";

    /// <summary>Model, dataset or Space.</summary>
    public HubRepoType RepoType { get; init; } = HubRepoType.Model;

    /// <summary>Commit title.</summary>
    public string CommitMessage { get; init; } = "Upload folder with loqt";

    /// <summary>Commit description (may be empty).</summary>
    public string CommitDescription { get; init; } = string.Empty;

    /// <summary>Create the repository first (an existing one is fine).</summary>
    public bool CreateRepo { get; init; } = true;

    /// <summary>Visibility of a repository this call creates; an existing repository keeps its own.</summary>
    public bool Private { get; init; }
}
