namespace LoQT.Hub;

/// <summary>What a request was about, so failures can name the repository, revision and file.</summary>
internal sealed record HubRequestContext(string Operation, HubRepoId? Repo = null, string? Revision = null, string? Path = null);
