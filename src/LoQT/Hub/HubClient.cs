namespace LoQT.Hub;

/// <summary>
/// Client for the Hugging Face Hub: downloads into the cache Python's huggingface_hub uses (so either tool finds what
/// the other downloaded), resolves model ids for the rest of LoQT, and publishes folders as commits. Transient
/// failures are retried with backoff; client errors become <see cref="HubException"/>s that say what to do.
/// </summary>
public sealed class HubClient : IDisposable
{
    private readonly HubHttp http;
    private readonly HubFileDownloader files;
    private readonly HubSnapshotDownloader snapshots;
    private readonly HubUploader uploader;

    /// <summary>Creates a client; without <paramref name="options"/> it reads the environment (<see cref="HubOptions.FromEnvironment"/>).</summary>
    public HubClient(HubOptions? options = null)
    {
        Options = options ?? HubOptions.FromEnvironment();
        http = new HubHttp(Options);
        files = new HubFileDownloader(http);
        snapshots = new HubSnapshotDownloader(http, files);
        uploader = new HubUploader(http);
    }

    /// <summary>The options in effect.</summary>
    public HubOptions Options { get; }

    /// <summary>The repository's commit and file list at <paramref name="revision"/>.</summary>
    public Task<HubRepoInfo> GetRepoInfoAsync(
        string repoId, string revision = "main", HubRepoType repoType = HubRepoType.Model, CancellationToken cancellationToken = default) =>
        snapshots.GetRepoInfoAsync(HubRepoId.Parse(repoId, repoType), revision, cancellationToken);

    /// <summary>Commit, etag, size and download location of one file, without downloading it.</summary>
    public Task<HubFileMetadata> GetFileMetadataAsync(
        string repoId, string path, string revision = "main", HubRepoType repoType = HubRepoType.Model, CancellationToken cancellationToken = default) =>
        files.GetMetadataAsync(HubRepoId.Parse(repoId, repoType), path, revision, cancellationToken);

    /// <summary>Downloads one file into the cache (or finds it there) and returns its path inside the snapshot folder.</summary>
    public Task<string> DownloadFileAsync(
        string repoId,
        string path,
        string revision = "main",
        HubRepoType repoType = HubRepoType.Model,
        IProgress<DownloadProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        files.DownloadAsync(HubRepoId.Parse(repoId, repoType), path, revision, progress, cancellationToken);

    /// <summary>
    /// Downloads the files of a revision (filtered by <see cref="SnapshotDownloadOptions.Include"/> /
    /// <see cref="SnapshotDownloadOptions.Exclude"/>) into the cache, <see cref="HubOptions.MaxParallelDownloads"/> at a time,
    /// and returns the snapshot folder, or <see cref="SnapshotDownloadOptions.LocalDir"/> when set.
    /// </summary>
    public async Task<string> DownloadSnapshotAsync(
        string repoId,
        SnapshotDownloadOptions? options = null,
        IProgress<DownloadProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new SnapshotDownloadOptions();
        var repo = HubRepoId.Parse(repoId, options.RepoType);
        var filter = new HubPathFilter(options.Include, options.Exclude);
        var snapshot = await snapshots.DownloadAsync(
            repo,
            options.Revision,
            all => all.Where(filter.Matches).ToList(),
            static _ => true,
            progress,
            cancellationToken).ConfigureAwait(false);
        if (options.LocalDir is null)
        {
            return snapshot;
        }

        var wanted = HubSnapshotDownloader.ListSnapshot(snapshot).Where(filter.Matches);
        return HubSnapshotDownloader.CopyToLocalDir(snapshot, wanted, options.LocalDir);
    }

    /// <summary>
    /// Where a model lives on disk. An existing directory is returned as it is; anything else is taken as a Hub repo id
    /// and only what a model needs is downloaded (config.json, generation_config.json, tokenizer files, the safetensors
    /// weights and their index; never <c>*.bin</c> / <c>*.pth</c> / <c>*.pt</c> when safetensors exist), returning the
    /// snapshot folder. Offline, the cached snapshot is used or a <see cref="HubOfflineException"/> says what is missing.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="dirOrRepoId"/> is neither a directory nor a repo id.</exception>
    public Task<string> ResolveModelAsync(
        string dirOrRepoId,
        string revision = "main",
        IProgress<DownloadProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        ResolveAsync(
            dirOrRepoId,
            revision,
            (repo, all) => ModelFileSelection.Select(all) is { } chosen && chosen.Contains("config.json")
                ? chosen
                : throw new HubException($"'{repo}' at '{revision}' has no config.json at its top level, so it is not a model LoQT can load."),
            static cached => File.Exists(Path.Combine(cached, "config.json")),
            progress,
            cancellationToken);

    /// <summary>
    /// Where a tokenizer lives on disk: an existing directory as it is; a Hub repo id downloads only the tokenizer files
    /// (<c>tokenizer.json</c> or <c>tokenizer.model</c>, <c>tokenizer_config.json</c>, <c>special_tokens_map.json</c>,
    /// <c>config.json</c>), never the weights, and returns the snapshot folder.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="dirOrRepoId"/> is neither a directory nor a repo id.</exception>
    public Task<string> ResolveTokenizerAsync(
        string dirOrRepoId,
        string revision = "main",
        IProgress<DownloadProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        ResolveAsync(
            dirOrRepoId,
            revision,
            (repo, all) => ModelFileSelection.SelectTokenizer(all) is { Count: > 0 } chosen
                ? chosen
                : throw new HubException($"'{repo}' at '{revision}' has no tokenizer.json or tokenizer.model at its top level."),
            static cached => File.Exists(Path.Combine(cached, "tokenizer.json")) || File.Exists(Path.Combine(cached, "tokenizer.model")),
            progress,
            cancellationToken);

    /// <summary>Creates a repository and returns its URL; with <paramref name="existOk"/> an existing one is fine.</summary>
    public Task<string> CreateRepoAsync(
        string repoId, bool isPrivate = false, bool existOk = true, HubRepoType repoType = HubRepoType.Model, CancellationToken cancellationToken = default) =>
        uploader.CreateRepoAsync(HubRepoId.Parse(repoId, repoType), isPrivate, existOk, cancellationToken);

    /// <summary>
    /// Publishes every file of <paramref name="folder"/> as one commit (LFS for what the Hub wants in LFS, skipping objects
    /// it already has; the rest inline) and returns the commit.
    /// </summary>
    public Task<HubCommitInfo> UploadFolderAsync(
        string folder,
        string repoId,
        UploadFolderOptions? options = null,
        IProgress<UploadProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new UploadFolderOptions();
        return uploader.UploadFolderAsync(folder, HubRepoId.Parse(repoId, options.RepoType), options, progress, cancellationToken);
    }

    /// <summary>Releases the HTTP connections.</summary>
    public void Dispose() => http.Dispose();

    private async Task<string> ResolveAsync(
        string dirOrRepoId,
        string revision,
        Func<HubRepoId, IReadOnlyList<string>, IReadOnlyList<string>> select,
        Func<string, bool> isUsableCache,
        IProgress<DownloadProgress>? progress,
        CancellationToken cancellationToken)
    {
        if (Directory.Exists(dirOrRepoId))
        {
            return Path.GetFullPath(dirOrRepoId);
        }

        if (!HubRepoId.TryParse(dirOrRepoId, out var repo) || LooksLikePath(dirOrRepoId))
        {
            throw new ArgumentException(
                $"Model '{dirOrRepoId}' is neither an existing directory nor a Hugging Face repo id (namespace/name).", nameof(dirOrRepoId));
        }

        return await snapshots.DownloadAsync(repo, revision, all => select(repo, all), isUsableCache, progress, cancellationToken).ConfigureAwait(false);
    }

    private static bool LooksLikePath(string value) =>
        value.StartsWith('.') || value.StartsWith('/') || value.StartsWith('~') || value.Contains('\\', StringComparison.Ordinal);
}
