namespace LoQT.Hub;

/// <summary>A repository at one revision (<c>GET /api/{type}s/{id}/revision/{revision}</c>).</summary>
/// <param name="Id">Repository id.</param>
/// <param name="Sha">Commit the revision resolved to.</param>
/// <param name="Files">Every file path in the repository at that commit (<c>siblings[].rfilename</c>).</param>
public sealed record HubRepoInfo(string Id, string Sha, IReadOnlyList<string> Files);
