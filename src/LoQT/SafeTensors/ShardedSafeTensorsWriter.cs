using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp;

namespace LoQT.SafeTensors;

/// <summary>
/// Writes a Hugging Face style checkpoint into a folder, starting a new shard whenever the next tensor would push the
/// current one past <see cref="MaxShardBytes"/>, without holding tensors in memory.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Complete"/> names the shards <c>{base}-00001-of-0000N.safetensors</c> and writes
/// <c>{base}.safetensors.index.json</c> (<c>{"metadata": {"total_size": …}, "weight_map": {…}}</c>); with a single shard it
/// writes <c>{base}.safetensors</c> and no index, as Hugging Face transformers does. Every file is first written under a
/// temporary name; the renames all happen at the end, the index last. Afterwards, files of an earlier save with the same
/// base name that are not part of this one (other shard counts, a single file, an index) are deleted so that readers
/// cannot pick up a stale checkpoint.
/// </para>
/// <para>Disposing without <see cref="Complete"/> deletes the temporary files and changes nothing else. Not thread-safe.</para>
/// </remarks>
public sealed class ShardedSafeTensorsWriter : IDisposable
{
    private readonly IReadOnlyDictionary<string, string>? _metadata;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly List<TensorDataSpool> _shards = [];
    private readonly string _token = TensorDataSpool.NewToken();
    private bool _closed;
    private bool _completed;
    private long _togetherBytesLeft;

    /// <summary>Starts writing a checkpoint into <paramref name="directory"/> (created if needed).</summary>
    /// <param name="directory">The checkpoint folder.</param>
    /// <param name="maxShardBytes">The most tensor data bytes per shard; a single tensor larger than this gets a shard of its own.</param>
    /// <param name="baseName">The file name stem, <c>model</c> by default.</param>
    /// <param name="metadata">The <c>__metadata__</c> written into every shard (e.g. <c>{"format": "pt"}</c>), or null for none.</param>
    public ShardedSafeTensorsWriter(string directory, long maxShardBytes, string baseName = "model", IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        ArgumentException.ThrowIfNullOrEmpty(baseName);
        if (baseName.IndexOfAny(['/', '\\']) >= 0)
        {
            throw new ArgumentException($"base name '{baseName}' must be a plain file name stem", nameof(baseName));
        }

        Directory = System.IO.Path.GetFullPath(directory);
        MaxShardBytes = maxShardBytes;
        BaseName = baseName;
        _metadata = metadata is null ? null : new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        System.IO.Directory.CreateDirectory(Directory);
    }

    /// <summary>The checkpoint folder (full path).</summary>
    public string Directory { get; }

    /// <summary>The most tensor data bytes per shard.</summary>
    public long MaxShardBytes { get; }

    /// <summary>The file name stem.</summary>
    public string BaseName { get; }

    /// <summary>The index file's name: <c>{base}.safetensors.index.json</c>.</summary>
    public string IndexFileName => BaseName + ".safetensors.index.json";

    /// <summary>How many shards the tensors added so far occupy.</summary>
    public int ShardCount => _shards.Count;

    /// <summary>Tensor data bytes added so far, over all shards (the index's <c>total_size</c>).</summary>
    public long TotalSize => _shards.Sum(s => s.DataLength);

    /// <summary>The files <see cref="Complete"/> wrote (full paths: shards in order, then the index if any); empty before.</summary>
    public IReadOnlyList<string> WrittenFiles { get; private set; } = [];

    /// <summary>Adds a tensor from its raw little-endian bytes.</summary>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added, or <paramref name="data"/> does not hold exactly the shape's bytes.</exception>
    public void Add(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> data)
    {
        EnsureOpen();
        TensorNameCheck.EnsureNew(_names, name, Directory);
        var byteLength = TensorNameCheck.ByteLength(name, dtype, shape);
        if (data.Length != byteLength)
        {
            throw new ArgumentException($"tensor '{name}': got {data.Length} bytes of data, but shape [{string.Join(", ", shape.ToArray())}] of {dtype.ToHeaderName()} needs {byteLength}", nameof(data));
        }

        ShardFor(byteLength).Append(name, dtype, shape.ToArray(), data);
        _names.Add(name);
    }

    /// <summary>Adds a tensor whose raw little-endian bytes are read from <paramref name="data"/> (exactly the shape's byte count).</summary>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added, or the stream ends early.</exception>
    public void Add(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, Stream data)
    {
        ArgumentNullException.ThrowIfNull(data);
        EnsureOpen();
        TensorNameCheck.EnsureNew(_names, name, Directory);
        var byteLength = TensorNameCheck.ByteLength(name, dtype, shape);
        ShardFor(byteLength).Append(name, dtype, shape.ToArray(), byteLength, stream => StreamCopy.CopyExactly(data, stream, byteLength, name));
        _names.Add(name);
    }

    /// <summary>Adds a torch tensor (any device, any layout): its dtype, shape and a contiguous copy of its elements.</summary>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added, or the tensor's dtype has no safetensors counterpart.</exception>
    public void Add(string name, torch.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        EnsureOpen();
        TensorNameCheck.EnsureNew(_names, name, Directory);
        var dtype = SafeTensorDTypes.FromScalarType(tensor.dtype);
        var shape = tensor.shape;
        var byteLength = TensorNameCheck.ByteLength(name, dtype, shape);
        ShardFor(byteLength).Append(name, dtype, shape, byteLength, stream => TensorBytes.WriteTo(tensor, stream));
        _names.Add(name);
    }

    /// <summary>
    /// Makes the next tensors, <paramref name="byteLength"/> bytes of data in all, land in one shard: starts a new shard
    /// now unless they fit in the current one (a group larger than a shard gets a shard of its own). For tensors that
    /// readers expect side by side, such as a quantized weight and its quant state.
    /// </summary>
    /// <param name="byteLength">The data bytes of the tensors about to be added.</param>
    public void KeepTogether(long byteLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        EnsureOpen();
        _togetherBytesLeft = 0;
        ShardFor(byteLength);
        _togetherBytesLeft = byteLength;
    }

    /// <summary>Writes every shard and the index under temporary names, then renames them into place (index last) and removes stale files of an earlier save.</summary>
    public void Complete()
    {
        EnsureOpen();

        // A shard can be left empty only by an Add that failed after starting it.
        foreach (var empty in _shards.Where(s => s.Entries.Count == 0).ToArray())
        {
            empty.Dispose();
            _shards.Remove(empty);
        }

        if (_shards.Count == 0)
        {
            NewShard();
        }

        var count = _shards.Count;
        var finalNames = Enumerable.Range(1, count).Select(i => ShardFileName(i, count)).ToArray();
        var staged = new List<(string Temp, string Target)>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var target = System.IO.Path.Combine(Directory, finalNames[i]);
                var temp = $"{target}.{_token}.tmp";
                staged.Add((temp, target));
                _shards[i].WriteFile(temp, _metadata);

                // Its data is in the shard now: free the disk space at once (the entries stay for the index), so that
                // a 13 GB checkpoint needs 13 GB plus one shard of spare disk, not twice its size.
                _shards[i].Dispose();
            }

            if (count > 1)
            {
                var target = System.IO.Path.Combine(Directory, IndexFileName);
                var temp = $"{target}.{_token}.tmp";
                staged.Add((temp, target));
                var weightMap = _shards.SelectMany((shard, i) => shard.Entries.Select(e => (e.Name, File: finalNames[i])));
                SafeTensorsIndex.Write(temp, TotalSize, weightMap);
            }

            foreach (var (temp, target) in staged)
            {
                File.Move(temp, target, overwrite: true);
            }
        }
        catch
        {
            foreach (var (temp, _) in staged)
            {
                File.Delete(temp);
            }

            throw;
        }

        WrittenFiles = staged.Select(s => s.Target).ToArray();
        RemoveStaleFiles(WrittenFiles);
        _completed = true;
        DisposeShards();
    }

    /// <summary>Deletes the temporary files; without a prior <see cref="Complete"/>, nothing else changes.</summary>
    public void Dispose() => DisposeShards();

    private string ShardFileName(int index, int count) =>
        count == 1
            ? BaseName + ".safetensors"
            : string.Create(CultureInfo.InvariantCulture, $"{BaseName}-{index:D5}-of-{count:D5}.safetensors");

    private TensorDataSpool ShardFor(long byteLength)
    {
        var current = _shards.Count > 0 ? _shards[^1] : null;
        if (current is not null && _togetherBytesLeft > 0)
        {
            _togetherBytesLeft = Math.Max(0, _togetherBytesLeft - byteLength);
            return current;
        }

        if (current is null || (current.Entries.Count > 0 && current.DataLength + byteLength > MaxShardBytes))
        {
            current?.CloseData(); // keep one open file handle, whatever the shard count
            current = NewShard();
        }

        return current;
    }

    private TensorDataSpool NewShard()
    {
        var shard = new TensorDataSpool(System.IO.Path.Combine(
            Directory, string.Create(CultureInfo.InvariantCulture, $"{BaseName}.shard{_shards.Count + 1}.{_token}.data.tmp")));
        _shards.Add(shard);
        return shard;
    }

    private void RemoveStaleFiles(IReadOnlyList<string> written)
    {
        var keep = new HashSet<string>(written, StringComparer.Ordinal);
        var pattern = new Regex(
            "^" + Regex.Escape(BaseName) + @"(-\d{5}-of-\d{5}\.safetensors|\.safetensors|\.safetensors\.index\.json)$",
            RegexOptions.CultureInvariant);
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory))
        {
            if (pattern.IsMatch(System.IO.Path.GetFileName(file)) && !keep.Contains(file))
            {
                File.Delete(file);
            }
        }
    }

    private void EnsureOpen()
    {
        if (_closed)
        {
            throw _completed
                ? new InvalidOperationException($"the checkpoint in {Directory} is already complete")
                : new ObjectDisposedException(nameof(ShardedSafeTensorsWriter), $"the writer of {Directory} was disposed without completing");
        }
    }

    private void DisposeShards()
    {
        _closed = true;
        foreach (var shard in _shards)
        {
            shard.Dispose();
        }

        _shards.Clear();
    }
}
