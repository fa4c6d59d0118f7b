using System.Security.Cryptography;

namespace LoQT.SafeTensors;

/// <summary>
/// The tensors of one safetensors file being written: their header entries in memory, their bytes streamed to a temporary
/// data file, so that the header (whose size depends on every entry) can be written in front of the data at the end.
/// </summary>
internal sealed class TensorDataSpool : IDisposable
{
    private const int BufferBytes = 1 << 20;

    private readonly List<SafeTensorInfo> _entries = [];
    private FileStream? _data;

    /// <summary>Creates the temporary data file <paramref name="dataPath"/>.</summary>
    public TensorDataSpool(string dataPath)
    {
        DataPath = dataPath;
        _data = new FileStream(dataPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, BufferBytes);
    }

    /// <summary>The temporary data file.</summary>
    public string DataPath { get; }

    /// <summary>Bytes of tensor data so far.</summary>
    public long DataLength { get; private set; }

    /// <summary>The entries so far, in insertion order.</summary>
    public IReadOnlyList<SafeTensorInfo> Entries => _entries;

    /// <summary>A random token for temporary file names, so that concurrent writers never collide.</summary>
    public static string NewToken() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    /// <summary>Appends one tensor whose <paramref name="byteLength"/> bytes <paramref name="writeData"/> writes to the stream it is given.</summary>
    /// <remarks>If <paramref name="writeData"/> fails or writes a different count, the data file is cut back and nothing is added.</remarks>
    public void Append(string name, SafeTensorDType dtype, long[] shape, long byteLength, Action<Stream> writeData)
    {
        var data = _data ?? throw new InvalidOperationException($"the data file {DataPath} is already closed");
        var start = data.Position;
        try
        {
            writeData(data);
            var written = data.Position - start;
            if (written != byteLength)
            {
                throw new ArgumentException($"tensor '{name}': got {written} bytes of data, but shape [{string.Join(", ", shape)}] of {dtype.ToHeaderName()} needs {byteLength}");
            }
        }
        catch
        {
            data.SetLength(start);
            data.Position = start;
            throw;
        }

        _entries.Add(new SafeTensorInfo(name, dtype, shape, DataLength, byteLength));
        DataLength += byteLength;
    }

    /// <summary>Appends one tensor from its bytes (already checked against its shape by the caller).</summary>
    public void Append(string name, SafeTensorDType dtype, long[] shape, ReadOnlySpan<byte> bytes)
    {
        var data = _data ?? throw new InvalidOperationException($"the data file {DataPath} is already closed");
        var start = data.Position;
        try
        {
            data.Write(bytes);
        }
        catch
        {
            data.SetLength(start);
            data.Position = start;
            throw;
        }

        _entries.Add(new SafeTensorInfo(name, dtype, shape, DataLength, bytes.Length));
        DataLength += bytes.Length;
    }

    /// <summary>Flushes and closes the data file, keeping it for <see cref="WriteFile"/>.</summary>
    public void CloseData()
    {
        _data?.Dispose();
        _data = null;
    }

    /// <summary>Writes header + data to <paramref name="path"/> (created new) and flushes it to disk.</summary>
    public void WriteFile(string path, IReadOnlyDictionary<string, string>? metadata)
    {
        CloseData();
        var header = SafeTensorsHeaderWriter.Build(_entries, metadata);
        using var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferBytes);
        output.SetLength(header.Length + DataLength);
        output.Write(header);
        using (var data = new FileStream(DataPath, FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes, FileOptions.SequentialScan))
        {
            if (data.Length != DataLength)
            {
                throw new IOException($"the temporary data file {DataPath} has {data.Length} bytes, expected {DataLength}; was it changed by someone else?");
            }

            data.CopyTo(output, BufferBytes);
        }

        output.Flush(flushToDisk: true);
    }

    /// <summary>Closes and deletes the temporary data file.</summary>
    public void Dispose()
    {
        CloseData();
        File.Delete(DataPath);
    }
}
