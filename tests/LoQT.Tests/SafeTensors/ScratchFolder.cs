using System.Buffers.Binary;
using System.Text;

namespace LoQT.Tests.SafeTensors;

/// <summary>A fresh temporary folder, deleted with everything in it on dispose.</summary>
internal sealed class ScratchFolder : IDisposable
{
    public ScratchFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "loqt-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string[] FileNames() => Directory.GetFiles(Path).Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    /// <summary>Writes a safetensors file byte by byte: the length prefix (the JSON's length unless given), the JSON, the data.</summary>
    public string WriteRaw(string name, string json, byte[]? data = null, ulong? headerLength = null)
    {
        var jsonBytes = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + jsonBytes.Length + (data?.Length ?? 0)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)jsonBytes.Length);
        jsonBytes.CopyTo(bytes, 8);
        data?.CopyTo(bytes, 8 + jsonBytes.Length);
        var path = File(name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A test that failed may still hold a mapping open; the OS temp cleaner gets the rest.
        }
    }
}
