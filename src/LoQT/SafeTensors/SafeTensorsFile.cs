using System.IO.MemoryMappedFiles;
using TorchSharp;

namespace LoQT.SafeTensors;

/// <summary>
/// One <c>.safetensors</c> file, memory-mapped: opening reads and validates only the header; tensor bytes are paged in
/// by the operating system when a tensor is read, one tensor at a time.
/// </summary>
/// <remarks>
/// Reading is thread-safe. Spans and streams handed out point into the mapping and are valid until <see cref="Dispose"/>.
/// </remarks>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    private readonly SafeTensorsHeader _header;
    private readonly long _dataStart;
    private MemoryMappedFile? _map;
    private MemoryMappedViewAccessor? _view;
    private byte* _base;

    private SafeTensorsFile(string path, SafeTensorsHeader header, long dataStart, MemoryMappedFile map, MemoryMappedViewAccessor view)
    {
        Path = path;
        _header = header;
        _dataStart = dataStart;
        _map = map;
        _view = view;
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + view.PointerOffset;
    }

    /// <summary>The file's full path.</summary>
    public string Path { get; }

    /// <summary>The header's <c>__metadata__</c> map (empty when there is none).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _header.Metadata;

    /// <summary>Every tensor, in the order of their data in the file.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors => _header.Tensors;

    /// <summary>Where the data section begins, in bytes from the start of the file (8 + the JSON header's length).</summary>
    public long DataStart => _dataStart;

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is not valid safetensors; the message says what is wrong and where.</exception>
    public static SafeTensorsFile Open(string path)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.RandomAccess);
        try
        {
            var fileLength = stream.Length;
            Span<byte> prefix = stackalloc byte[SafeTensorsHeader.LengthPrefixBytes];
            if (fileLength >= prefix.Length)
            {
                ReadExactly(stream, prefix, 0);
            }

            var jsonLength = SafeTensorsHeader.ReadJsonLength(prefix, fileLength, fullPath);
            var json = new byte[jsonLength];
            ReadExactly(stream, json, SafeTensorsHeader.LengthPrefixBytes);
            var dataStart = SafeTensorsHeader.LengthPrefixBytes + jsonLength;
            var header = SafeTensorsHeader.Parse(json, fileLength - dataStart, fullPath);

            var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            try
            {
                var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                return new SafeTensorsFile(fullPath, header, dataStart, map, view);
            }
            catch
            {
                map.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _header.ByName.ContainsKey(name);

    /// <summary>The header entry of tensor <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such tensor; the message names the tensor and the file.</exception>
    public SafeTensorInfo GetInfo(string name) =>
        _header.ByName.TryGetValue(name, out var info)
            ? info
            : throw new KeyNotFoundException($"tensor '{name}' is not in {Path}");

    /// <summary>The tensor's raw little-endian bytes: a view into the mapping, no copy, valid until this file is disposed.</summary>
    /// <exception cref="InvalidOperationException">The tensor is larger than a span can address (2 GiB); use <see cref="OpenRead"/> or <see cref="ReadTensor(string)"/>.</exception>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = GetInfo(name);
        if (info.ByteLength > int.MaxValue)
        {
            throw new InvalidOperationException(
                $"tensor '{name}' in {Path} is {info.ByteLength} bytes, more than a span can address; use OpenRead or ReadTensor");
        }

        return new ReadOnlySpan<byte>(DataPointer(info), (int)info.ByteLength);
    }

    /// <summary>
    /// A read-only stream over the tensor's raw bytes (any size), reading from the mapping; valid until this file is
    /// disposed. Disposing the stream gives the pages it read back to the page cache, so they stop counting as resident.
    /// </summary>
    public Stream OpenRead(string name)
    {
        var info = GetInfo(name);
        return new ReleasingStream(this, DataPointer(info), info.ByteLength);
    }

    /// <summary>
    /// A new CPU tensor of the file's dtype and shape holding a copy of the tensor's data (it owns its memory). The mapped
    /// pages that were copied are given back, so reading a whole checkpoint tensor by tensor keeps only the copies resident.
    /// </summary>
    public torch.Tensor ReadTensor(string name)
    {
        var info = GetInfo(name);
        var data = DataPointer(info);
        var tensor = TensorBytes.Create(data, info.DType, info.Shape);
        MappedPages.Release(data, info.ByteLength);
        return tensor;
    }

    /// <summary>A new CPU tensor holding the tensor's data converted to <paramref name="dtype"/>.</summary>
    public torch.Tensor ReadTensor(string name, torch.ScalarType dtype)
    {
        var tensor = ReadTensor(name);
        if (tensor.dtype == dtype)
        {
            return tensor;
        }

        using (tensor)
        {
            return tensor.to_type(dtype);
        }
    }

    /// <summary>Unmaps and closes the file; spans and streams handed out become invalid.</summary>
    public void Dispose()
    {
        if (_view is not null)
        {
            _base = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _view = null;
        }

        _map?.Dispose();
        _map = null;
    }

    private static void ReadExactly(FileStream stream, Span<byte> buffer, long offset)
    {
        // pread may return fewer bytes than asked for; the length checks above guarantee the bytes exist.
        while (!buffer.IsEmpty)
        {
            var read = RandomAccess.Read(stream.SafeFileHandle, buffer, offset);
            if (read == 0)
            {
                throw new EndOfStreamException($"{stream.Name}: the file ended while reading its header (was it truncated while open?)");
            }

            buffer = buffer[read..];
            offset += read;
        }
    }

    /// <summary>A stream over mapped bytes that releases their pages when disposed.</summary>
    private sealed class ReleasingStream : UnmanagedMemoryStream
    {
        private readonly SafeTensorsFile _file;
        private readonly byte* _start;
        private readonly long _length;

        public ReleasingStream(SafeTensorsFile file, byte* start, long length)
            : base(start, length, length, FileAccess.Read)
        {
            _file = file;
            _start = start;
            _length = length;
        }

        protected override void Dispose(bool disposing)
        {
            // Only while the mapping exists: once unmapped, the address range may belong to other memory, which
            // MADV_DONTNEED would zero.
            if (_file._base is not null)
            {
                MappedPages.Release(_start, _length);
            }

            base.Dispose(disposing);
        }
    }

    private byte* DataPointer(SafeTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_base is null, this);
        return _base + _dataStart + info.DataOffset;
    }
}
