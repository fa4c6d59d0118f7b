using TorchSharp;

namespace LoQT.SafeTensors;

/// <summary>
/// Writes one <c>.safetensors</c> file tensor by tensor without holding them in memory: data streams to a temporary file
/// beside the target, and <see cref="Complete"/> writes header + data to another temporary file and renames it onto the target.
/// </summary>
/// <remarks>
/// The header is laid out as the reference (Python/Rust) writer lays it out: compact JSON with the tensors in the order they
/// were added, then <c>__metadata__</c>, padded with spaces to a multiple of 8 bytes. Disposing without <see cref="Complete"/> deletes the temporary files and
/// leaves the target untouched. Not thread-safe.
/// </remarks>
public sealed class SafeTensorsWriter : IDisposable
{
    private readonly IReadOnlyDictionary<string, string>? _metadata;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly string _token = TensorDataSpool.NewToken();
    private TensorDataSpool? _spool;
    private bool _completed;

    /// <summary>Starts writing <paramref name="path"/> (its folder is created if needed); nothing appears there before <see cref="Complete"/>.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="metadata">The header's <c>__metadata__</c> (e.g. <c>{"format": "pt"}</c>), or null for none.</param>
    public SafeTensorsWriter(string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Path = System.IO.Path.GetFullPath(path);
        _metadata = metadata is null ? null : new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _spool = new TensorDataSpool($"{Path}.{_token}.data.tmp");
    }

    /// <summary>The target file's full path.</summary>
    public string Path { get; }

    /// <summary>How many tensors were added.</summary>
    public int Count => _spool?.Entries.Count ?? 0;

    /// <summary>Bytes of tensor data added so far.</summary>
    public long DataLength => _spool?.DataLength ?? 0;

    /// <summary>Adds a tensor from its raw little-endian bytes.</summary>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added, or <paramref name="data"/> does not hold exactly the shape's bytes.</exception>
    public void Add(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> data)
    {
        var spool = Begin(name);
        var byteLength = TensorNameCheck.ByteLength(name, dtype, shape);
        if (data.Length != byteLength)
        {
            throw new ArgumentException($"tensor '{name}': got {data.Length} bytes of data, but shape [{string.Join(", ", shape.ToArray())}] of {dtype.ToHeaderName()} needs {byteLength}", nameof(data));
        }

        spool.Append(name, dtype, shape.ToArray(), data);
        _names.Add(name);
    }

    /// <summary>Adds a tensor whose raw little-endian bytes are read from <paramref name="data"/> (exactly the shape's byte count; for tensors too large for a span).</summary>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added, or the stream ends early.</exception>
    public void Add(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape, Stream data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var spool = Begin(name);
        var byteLength = TensorNameCheck.ByteLength(name, dtype, shape);
        spool.Append(name, dtype, shape.ToArray(), byteLength, stream => StreamCopy.CopyExactly(data, stream, byteLength, name));
        _names.Add(name);
    }

    /// <summary>Adds a torch tensor (any device, any layout): its dtype, shape and a contiguous copy of its elements.</summary>
    /// <exception cref="ArgumentException">The name is empty, reserved or already added, or the tensor's dtype has no safetensors counterpart.</exception>
    public void Add(string name, torch.Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var spool = Begin(name);
        var dtype = SafeTensorDTypes.FromScalarType(tensor.dtype);
        var shape = tensor.shape;
        var byteLength = TensorNameCheck.ByteLength(name, dtype, shape);
        spool.Append(name, dtype, shape, byteLength, stream => TensorBytes.WriteTo(tensor, stream));
        _names.Add(name);
    }

    /// <summary>Writes the file: header and data into a temporary file beside the target, flushed to disk, then renamed onto the target.</summary>
    public void Complete()
    {
        var spool = _spool ?? throw Closed();
        var temp = $"{Path}.{_token}.tmp";
        try
        {
            spool.WriteFile(temp, _metadata);
            File.Move(temp, Path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }

        _completed = true;
        spool.Dispose();
        _spool = null;
    }

    /// <summary>Deletes the temporary files; without a prior <see cref="Complete"/>, no target file is written.</summary>
    public void Dispose()
    {
        _spool?.Dispose();
        _spool = null;
    }

    private TensorDataSpool Begin(string name)
    {
        var spool = _spool ?? throw Closed();
        TensorNameCheck.EnsureNew(_names, name, Path);
        return spool;
    }

    private InvalidOperationException Closed() =>
        _completed
            ? new InvalidOperationException($"{Path} is already complete")
            : new ObjectDisposedException(nameof(SafeTensorsWriter), $"the writer of {Path} was disposed without completing");
}
