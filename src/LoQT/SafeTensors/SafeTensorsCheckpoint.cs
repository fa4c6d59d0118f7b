using TorchSharp;

namespace LoQT.SafeTensors;

/// <summary>
/// A checkpoint in Hugging Face layout: one <c>.safetensors</c> file, or shards listed by <c>model.safetensors.index.json</c>.
/// Shards are opened (memory-mapped) the first time one of their tensors is asked for.
/// </summary>
/// <remarks>Thread-safe for reading. Spans and streams handed out are valid until <see cref="Dispose"/>.</remarks>
public sealed class SafeTensorsCheckpoint : IDisposable
{
    /// <summary>The single-file name Hugging Face uses.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>The index file name Hugging Face uses for sharded checkpoints.</summary>
    public const string IndexFileName = SafeTensorsIndex.DefaultFileName;

    private readonly SafeTensorsFile? _single;
    private readonly SafeTensorsIndex? _index;
    private readonly string _folder;
    private readonly Dictionary<string, SafeTensorsFile> _openShards = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private bool _disposed;

    private SafeTensorsCheckpoint(SafeTensorsFile single)
    {
        _single = single;
        _folder = System.IO.Path.GetDirectoryName(single.Path)!;
        Path = single.Path;
        TensorNames = single.Tensors.Select(t => t.Name).ToArray();
        Metadata = single.Metadata;
        Files = [single.Path];
    }

    private SafeTensorsCheckpoint(string indexPath, SafeTensorsIndex index)
    {
        _index = index;
        _folder = System.IO.Path.GetDirectoryName(indexPath)!;
        Path = indexPath;
        TensorNames = index.TensorNames;
        Metadata = index.Metadata;
        Files = index.TensorNames.Select(n => index.WeightMap[n]).Distinct(StringComparer.Ordinal)
            .Select(f => System.IO.Path.GetFullPath(System.IO.Path.Combine(_folder, f))).ToArray();
    }

    /// <summary>The file that was opened: the single <c>.safetensors</c> file or the index (full path).</summary>
    public string Path { get; }

    /// <summary>Whether the checkpoint is sharded through an index.</summary>
    public bool IsSharded => _index is not null;

    /// <summary>Every tensor name: file order for a single file, <c>weight_map</c> order for an index.</summary>
    public IReadOnlyList<string> TensorNames { get; }

    /// <summary>The single file's <c>__metadata__</c>, or the index's <c>metadata</c> (non-string values, such as <c>total_size</c>, as JSON text).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The data files (full paths): the single file, or every shard the index names, in order of first use.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>
    /// Opens a checkpoint: a <c>.safetensors</c> file, an index <c>.json</c> file, or a folder holding <c>model.safetensors</c>
    /// or else <c>model.safetensors.index.json</c> (the order Hugging Face transformers looks in).
    /// </summary>
    /// <exception cref="FileNotFoundException">Nothing to open at that path.</exception>
    /// <exception cref="InvalidDataException">The file or the index is malformed.</exception>
    public static SafeTensorsCheckpoint Open(string pathOrDirectory)
    {
        var full = System.IO.Path.GetFullPath(pathOrDirectory);
        if (Directory.Exists(full))
        {
            var single = System.IO.Path.Combine(full, SingleFileName);
            var index = System.IO.Path.Combine(full, IndexFileName);
            full = File.Exists(single) ? single
                : File.Exists(index) ? index
                : throw new FileNotFoundException($"{full} has neither {SingleFileName} nor {IndexFileName}", single);
        }
        else if (!File.Exists(full))
        {
            throw new FileNotFoundException($"no checkpoint at {full}: no such file or folder", full);
        }

        return full.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
            ? new SafeTensorsCheckpoint(full, SafeTensorsIndex.Read(full))
            : new SafeTensorsCheckpoint(SafeTensorsFile.Open(full));
    }

    /// <summary>Whether the checkpoint has a tensor named <paramref name="name"/> (for shards: whether the index lists it; no shard is opened).</summary>
    public bool Contains(string name) => _index?.WeightMap.ContainsKey(name) ?? _single!.Contains(name);

    /// <summary>The full path of the file that holds tensor <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such tensor.</exception>
    public string GetFilePath(string name) =>
        _index is null
            ? (_single!.Contains(name) ? _single.Path : throw NotFound(name))
            : System.IO.Path.GetFullPath(System.IO.Path.Combine(_folder, ShardOf(name)));

    /// <summary>The header entry of tensor <paramref name="name"/> (offsets relative to its own file's data section).</summary>
    /// <exception cref="KeyNotFoundException">No such tensor; the message names it and the checkpoint.</exception>
    /// <exception cref="FileNotFoundException">The shard the index names for it is missing.</exception>
    public SafeTensorInfo GetInfo(string name) => FileOf(name).GetInfo(name);

    /// <summary>The tensor's raw bytes, a view into its file's mapping (see <see cref="SafeTensorsFile.GetBytes"/>).</summary>
    public ReadOnlySpan<byte> GetBytes(string name) => FileOf(name).GetBytes(name);

    /// <summary>A read-only stream over the tensor's raw bytes (any size).</summary>
    public Stream OpenRead(string name) => FileOf(name).OpenRead(name);

    /// <summary>A new CPU tensor of the stored dtype holding a copy of the tensor.</summary>
    public torch.Tensor ReadTensor(string name) => FileOf(name).ReadTensor(name);

    /// <summary>A new CPU tensor holding the tensor converted to <paramref name="dtype"/>.</summary>
    public torch.Tensor ReadTensor(string name, torch.ScalarType dtype) => FileOf(name).ReadTensor(name, dtype);

    /// <summary>Closes every opened file.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _single?.Dispose();
            foreach (var shard in _openShards.Values)
            {
                shard.Dispose();
            }

            _openShards.Clear();
        }
    }

    private string ShardOf(string name) =>
        _index!.WeightMap.TryGetValue(name, out var file) ? file : throw NotFound(name);

    private SafeTensorsFile FileOf(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_single is not null)
        {
            return _single;
        }

        var shardName = ShardOf(name);
        SafeTensorsFile shard;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_openShards.TryGetValue(shardName, out shard!))
            {
                var shardPath = System.IO.Path.GetFullPath(System.IO.Path.Combine(_folder, shardName));
                if (!File.Exists(shardPath))
                {
                    throw new FileNotFoundException(
                        $"{Path} puts tensor '{name}' in {shardName}, but there is no such file ({shardPath})", shardPath);
                }

                shard = SafeTensorsFile.Open(shardPath);
                _openShards.Add(shardName, shard);
            }
        }

        return shard.Contains(name)
            ? shard
            : throw new InvalidDataException($"{Path} puts tensor '{name}' in {shardName}, but {shard.Path} has no such tensor");
    }

    private KeyNotFoundException NotFound(string name) => new($"tensor '{name}' is not in the checkpoint {Path}");
}
