using System.Security.Cryptography;
using System.Text;

namespace LoQT.Tests.Hub;

/// <summary>One in-memory repository of <see cref="LoopbackHubServer"/>: commits, refs (branches and tags), LFS storage, access rules.</summary>
internal sealed class LoopbackHubRepository(string id, string typeSegment)
{
    /// <summary>Extensions the Hub's default <c>.gitattributes</c> puts in LFS.</summary>
    public static readonly IReadOnlyList<string> LfsExtensions = [".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".model", ".gguf", ".zip"];

    private readonly Lock gate = new();

    public string Id { get; } = id;

    /// <summary><c>models</c>, <c>datasets</c> or <c>spaces</c>.</summary>
    public string TypeSegment { get; } = typeSegment;

    /// <summary>Folder-like key used in storage URLs.</summary>
    public string StorageKey => TypeSegment + "--" + Id.Replace("/", "--", StringComparison.Ordinal);

    public bool Private { get; set; }

    /// <summary>Files can be read only with a token listed in <see cref="AcceptedTokens"/>.</summary>
    public bool Gated { get; set; }

    public HashSet<string> AcceptedTokens { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, string> Refs { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, LoopbackCommit> Commits { get; } = new(StringComparer.Ordinal);

    /// <summary>LFS objects by sha256.</summary>
    public Dictionary<string, byte[]> LfsObjects { get; } = new(StringComparer.Ordinal);

    /// <summary>Commits in the order they were made.</summary>
    public List<LoopbackCommit> History { get; } = [];

    public static bool IsLfsPath(string path) => LfsExtensions.Any(e => path.EndsWith(e, StringComparison.Ordinal));

    public static string Sha256Hex(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>Git blob id: sha1 of <c>"blob {size}\0"</c> + content, which the Hub sends as the ETag of regular files.</summary>
    public static string GitBlobOid(byte[] data)
    {
        var header = Encoding.ASCII.GetBytes($"blob {data.Length}\0");
        return Convert.ToHexStringLower(SHA1.HashData([.. header, .. data]));
    }

    /// <summary>Resolves a branch, tag or full commit sha; null when unknown.</summary>
    public LoopbackCommit? Resolve(string revision)
    {
        lock (gate)
        {
            if (Refs.TryGetValue(revision, out var sha))
            {
                return Commits[sha];
            }

            return Commits.GetValueOrDefault(revision);
        }
    }

    /// <summary>Adds a commit on <paramref name="branch"/> replacing/adding <paramref name="changes"/>; LFS content goes to storage.</summary>
    public LoopbackCommit Commit(
        string branch,
        IReadOnlyDictionary<string, LoopbackFile> changes,
        string summary,
        string description = "",
        IReadOnlyList<(string Kind, string Path)>? operations = null)
    {
        lock (gate)
        {
            var parent = Refs.TryGetValue(branch, out var parentSha) ? Commits[parentSha] : null;
            var files = new Dictionary<string, LoopbackFile>(parent?.Files ?? new Dictionary<string, LoopbackFile>(), StringComparer.Ordinal);
            foreach (var (path, file) in changes)
            {
                files[path] = file;
                if (file.IsLfs)
                {
                    LfsObjects[file.Sha256] = file.Content;
                }
            }

            var sha = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(Guid.NewGuid().ToString())));
            var commit = new LoopbackCommit(sha, parent?.Sha, summary, description, files, operations ?? []);
            Commits[sha] = commit;
            Refs[branch] = sha;
            History.Add(commit);
            return commit;
        }
    }

    public void Tag(string tag, string commitSha)
    {
        lock (gate)
        {
            Refs[tag] = commitSha;
        }
    }

    public bool HasLfsObject(string oid, out byte[] content)
    {
        lock (gate)
        {
            return LfsObjects.TryGetValue(oid, out content!);
        }
    }

    public void StoreLfsObject(string oid, byte[] content)
    {
        lock (gate)
        {
            LfsObjects[oid] = content;
        }
    }
}

/// <summary>A file in a commit.</summary>
internal sealed record LoopbackFile(byte[] Content, bool IsLfs)
{
    public string Sha256 { get; } = LoopbackHubRepository.Sha256Hex(Content);

    public string GitOid { get; } = LoopbackHubRepository.GitBlobOid(Content);

    /// <summary>The Hub's rule for seeded files: LFS by extension.</summary>
    public static LoopbackFile For(string path, byte[] content) => new(content, LoopbackHubRepository.IsLfsPath(path));
}

/// <summary>A commit: its full file tree and, for commits made through the API, the ndjson operations it was made of.</summary>
internal sealed record LoopbackCommit(
    string Sha,
    string? Parent,
    string Summary,
    string Description,
    IReadOnlyDictionary<string, LoopbackFile> Files,
    IReadOnlyList<(string Kind, string Path)> Operations);
