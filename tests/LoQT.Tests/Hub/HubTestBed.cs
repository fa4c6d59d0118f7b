using System.Collections.Concurrent;
using System.Text;
using LoQT.Hub;

namespace LoQT.Tests.Hub;

/// <summary>A loopback Hub server, a temporary cache folder and client options wired to both, for one test.</summary>
internal sealed class HubTestBed : IAsyncDisposable
{
    /// <summary>A token the server accepts; tests check it never leaks.</summary>
    public const string Token = "hf_LoopbackSecretToken_7f3a9c21";

    public const string ModelId = "org/tiny-model";

    private readonly ConcurrentQueue<string> log = new();

    private HubTestBed(LoopbackHubServer server, string root)
    {
        Server = server;
        Root = root;
    }

    public LoopbackHubServer Server { get; }

    public string Root { get; }

    public string CacheDir => Path.Combine(Root, "cache");

    /// <summary>Everything the clients logged.</summary>
    public IReadOnlyList<string> Log => log.ToArray();

    /// <summary>The files of <see cref="ModelId"/>: small JSON and text files plus an LFS safetensors file and a nested file.</summary>
    public static Dictionary<string, byte[]> ModelFiles() => new()
    {
        ["config.json"] = Encoding.UTF8.GetBytes("{\"model_type\":\"llama\",\"hidden_size\":64}"),
        ["README.md"] = Encoding.UTF8.GetBytes("# tiny model\n"),
        ["tokenizer.json"] = Encoding.UTF8.GetBytes("{\"model\":{\"type\":\"BPE\"}}"),
        ["model.safetensors"] = Bytes(300_000, seed: 1),
        ["sub/notes.txt"] = Encoding.UTF8.GetBytes("nested file\n"),
    };

    public static async Task<HubTestBed> StartAsync(bool seedModel = true)
    {
        var server = await LoopbackHubServer.StartAsync();
        server.ValidTokens.Add(Token);
        var root = Path.Combine(Path.GetTempPath(), "loqt-hub-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        if (seedModel)
        {
            server.AddRepo(ModelId, ModelFiles());
        }

        return new HubTestBed(server, root);
    }

    /// <summary>Deterministic pseudo-random bytes.</summary>
    public static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Options for this server and cache with fast retries (backoff in milliseconds so tests stay quick).</summary>
    public HubOptions Options(string? token = Token) => new()
    {
        Endpoint = Server.Endpoint,
        Token = token,
        CacheDir = CacheDir,
        MaxRetries = 3,
        RetryBaseDelay = TimeSpan.FromMilliseconds(1),
        RetryMaxDelay = TimeSpan.FromMilliseconds(20),
        RequestTimeout = TimeSpan.FromSeconds(10),
        ReadTimeout = TimeSpan.FromSeconds(10),
        Log = log.Enqueue,
    };

    public HubClient Client(Func<HubOptions, HubOptions>? adjust = null, string? token = Token)
    {
        var options = Options(token);
        return new HubClient(adjust is null ? options : adjust(options));
    }

    public string RepoCache(string id = ModelId, string type = "models") => Path.Combine(CacheDir, type + "--" + id.Replace("/", "--", StringComparison.Ordinal));

    /// <summary>Paths of all files under the cache repo folder except lock files, relative, sorted.</summary>
    public IReadOnlyList<string> CacheEntries(string id = ModelId) =>
        Directory.Exists(RepoCache(id))
            ? Directory.EnumerateFileSystemEntries(RepoCache(id), "*", SearchOption.AllDirectories)
                .Select(p => Path.GetRelativePath(RepoCache(id), p).Replace('\\', '/'))
                .Order(StringComparer.Ordinal)
                .ToList()
            : [];

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder does not affect other tests.
        }
    }
}
