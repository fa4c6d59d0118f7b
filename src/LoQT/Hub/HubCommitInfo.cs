namespace LoQT.Hub;

/// <summary>The commit an upload created.</summary>
/// <param name="CommitUrl">Web URL of the commit (<c>commitUrl</c> in the Hub's answer).</param>
/// <param name="CommitOid">Commit sha.</param>
/// <param name="Files">Repository paths included in the commit.</param>
/// <param name="LfsUploaded">LFS objects sent.</param>
/// <param name="LfsAlreadyPresent">LFS objects the Hub already had (skipped).</param>
public sealed record HubCommitInfo(string CommitUrl, string CommitOid, IReadOnlyList<string> Files, int LfsUploaded, int LfsAlreadyPresent);
