using System.Buffers.Binary;
using LoQT.SafeTensors;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// Reads checkpoint tensors with plain positioned reads straight into new CPU tensors. Unlike reading through a
/// memory mapping, the file's pages then never count toward this process's resident memory, so loading a checkpoint
/// larger than RAM keeps RSS at the tensors actually held.
/// </summary>
internal sealed class CheckpointTensorReader(SafeTensorsCheckpoint checkpoint) : IDisposable
{
    // Under the 2 GiB a span can address.
    private const int ChunkBytes = 1 << 30;

    private readonly Dictionary<string, (SafeFileHandle Handle, long DataStart)> _files = new(StringComparer.Ordinal);

    /// <summary>A new CPU tensor of the stored dtype and shape.</summary>
    public unsafe Tensor Read(string name)
    {
        var info = checkpoint.GetInfo(name);
        var (handle, dataStart) = Open(checkpoint.GetFilePath(name));
        var tensor = torch.empty(info.Shape, info.DType.ToScalarType());
        try
        {
            if (info.ByteLength == 0)
            {
                return tensor;
            }

            var address = (byte*)Quantization.CpuTensorMemory.Address(tensor);
            for (long done = 0; done < info.ByteLength;)
            {
                var count = (int)Math.Min(ChunkBytes, info.ByteLength - done);
                var read = RandomAccess.Read(handle, new Span<byte>(address + done, count), dataStart + info.DataOffset + done);
                if (read <= 0)
                {
                    throw new EndOfStreamException($"{checkpoint.GetFilePath(name)} ends inside tensor '{name}'");
                }

                done += read;
            }

            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var (handle, _) in _files.Values)
        {
            handle.Dispose();
        }

        _files.Clear();
    }

    private (SafeFileHandle Handle, long DataStart) Open(string path)
    {
        if (!_files.TryGetValue(path, out var file))
        {
            var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, FileOptions.RandomAccess);
            Span<byte> prefix = stackalloc byte[8];
            if (RandomAccess.Read(handle, prefix, 0) != prefix.Length)
            {
                handle.Dispose();
                throw new InvalidDataException($"{path} is too short to be a safetensors file");
            }

            // The header was validated when the checkpoint opened the file: data starts after the u64 length and the JSON.
            file = (handle, 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(prefix));
            _files.Add(path, file);
        }

        return file;
    }
}
