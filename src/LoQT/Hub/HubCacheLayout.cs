using System.Text.RegularExpressions;

namespace LoQT.Hub;

/// <summary>
/// Paths of one repository inside the huggingface_hub cache, shared with Python users:
/// <c>{cache}/models--org--name/{blobs/&lt;etag&gt;, snapshots/&lt;commit&gt;/&lt;path&gt; (relative symlink to the blob), refs/&lt;revision&gt;}</c>,
/// partial downloads as <c>blobs/&lt;etag&gt;.incomplete</c>, locks as <c>{cache}/.locks/models--org--name/&lt;etag&gt;.lock</c>.
/// </summary>
internal sealed partial class HubCacheLayout
{
    public HubCacheLayout(string cacheDir, HubRepoId repo)
    {
        CacheDir = Path.GetFullPath(cacheDir);
        Repo = repo;
        RepoDir = Path.Combine(CacheDir, repo.CacheFolderName);
    }

    public string CacheDir { get; }

    public HubRepoId Repo { get; }

    public string RepoDir { get; }

    public string BlobsDir => Path.Combine(RepoDir, "blobs");

    public static bool IsCommitHash(string revision) => CommitHash().IsMatch(revision);

    public string BlobPath(string etag)
    {
        if (!SafeEtag().IsMatch(etag))
        {
            throw new HubException($"The Hub sent an ETag that cannot name a cache file: '{etag}'.");
        }

        return Path.Combine(BlobsDir, etag);
    }

    public static string IncompletePath(string blobPath) => blobPath + ".incomplete";

    public string LockPath(string etag) => Path.Combine(CacheDir, ".locks", Repo.CacheFolderName, etag + ".lock");

    public string SnapshotDir(string commit) => Path.Combine(RepoDir, "snapshots", commit);

    /// <summary>Where <paramref name="pathInRepo"/> appears in the snapshot of <paramref name="commit"/>; rejects paths that would escape it.</summary>
    public string PointerPath(string commit, string pathInRepo)
    {
        var snapshot = SnapshotDir(commit);
        var parts = pathInRepo.Split('/');
        if (pathInRepo.Length == 0 || pathInRepo.StartsWith('/') || parts.Any(static p => p is "" or "." or ".."))
        {
            throw new HubException($"Refusing to cache '{pathInRepo}': repository file paths must be relative without '.' or '..' segments.");
        }

        var pointer = Path.GetFullPath(Path.Combine([snapshot, .. parts]));
        if (!pointer.StartsWith(snapshot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new HubException($"Refusing to cache '{pathInRepo}': it resolves outside the snapshot folder.");
        }

        return pointer;
    }

    public string RefPath(string revision)
    {
        if (revision.Split('/').Any(static p => p is "" or "." or ".."))
        {
            throw new HubException($"'{revision}' is not a usable revision name.");
        }

        return Path.Combine([RepoDir, "refs", .. revision.Split('/')]);
    }

    /// <summary>The commit a branch or tag pointed to when it was last downloaded, or the revision itself when it is a commit sha.</summary>
    public string? ResolveCommit(string revision)
    {
        if (IsCommitHash(revision))
        {
            return revision;
        }

        var refPath = RefPath(revision);
        return File.Exists(refPath) ? File.ReadAllText(refPath).Trim() : null;
    }

    /// <summary>The cached snapshot folder for <paramref name="revision"/>, or null.</summary>
    public string? TryGetSnapshotDir(string revision)
    {
        var commit = ResolveCommit(revision);
        if (commit is null)
        {
            return null;
        }

        var dir = SnapshotDir(commit);
        return Directory.Exists(dir) ? dir : null;
    }

    /// <summary>Records <c>refs/&lt;revision&gt;</c> = commit (atomically), unless the revision is the commit itself.</summary>
    public void WriteRef(string revision, string commit)
    {
        if (revision == commit)
        {
            return;
        }

        var refPath = RefPath(revision);
        if (File.Exists(refPath) && File.ReadAllText(refPath).Trim() == commit)
        {
            return;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
        var temp = $"{refPath}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, commit);
        File.Move(temp, refPath, overwrite: true);
    }

    /// <summary>
    /// Makes <paramref name="pointerPath"/> a relative symlink to <paramref name="blobPath"/> (so the cache can be moved),
    /// falling back to a copy where symlinks are not allowed (Windows without developer mode).
    /// </summary>
    public static void CreatePointer(string blobPath, string pointerPath)
    {
        var folder = Path.GetDirectoryName(pointerPath)!;
        Directory.CreateDirectory(folder);
        var relative = Path.GetRelativePath(folder, blobPath);
        if (File.Exists(pointerPath) || new FileInfo(pointerPath).LinkTarget is not null)
        {
            File.Delete(pointerPath);
        }

        try
        {
            File.CreateSymbolicLink(pointerPath, relative);
        }
        catch (IOException) when (new FileInfo(pointerPath).LinkTarget == relative)
        {
            // Another process created the same link between our delete and create.
        }
        catch (UnauthorizedAccessException)
        {
            File.Copy(blobPath, pointerPath, overwrite: true);
        }
    }

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();

    [GeneratedRegex(@"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")]
    private static partial Regex SafeEtag();
}
