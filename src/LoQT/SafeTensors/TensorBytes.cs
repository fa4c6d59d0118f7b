using TorchSharp;

namespace LoQT.SafeTensors;

/// <summary>Copies raw little-endian element bytes into and out of CPU tensors.</summary>
/// <remarks>
/// TorchSharp exposes a tensor's memory only as a <see cref="Span{T}"/>, which holds at most 2 GiB; larger tensors are
/// copied through contiguous 1-D slices of at most <c>chunkBytes</c> each.
/// </remarks>
internal static class TensorBytes
{
    /// <summary>The largest slice copied at once; well under the 2 GiB a span can address.</summary>
    public const long DefaultChunkBytes = 1L << 30;

    /// <summary>A new CPU tensor of <paramref name="dtype"/> and <paramref name="shape"/> holding a copy of the bytes at <paramref name="source"/>.</summary>
    public static unsafe torch.Tensor Create(byte* source, SafeTensorDType dtype, long[] shape, long chunkBytes = DefaultChunkBytes)
    {
        var tensor = torch.empty(shape, dtype.ToScalarType());
        try
        {
            var elementSize = dtype.ElementSize();
            var elements = tensor.numel();
            if (elements == 0)
            {
                return tensor;
            }

            if (elements * elementSize <= chunkBytes)
            {
                tensor.bytes = new Span<byte>(source, checked((int)(elements * elementSize)));
                return tensor;
            }

            using var flat = tensor.view(-1);
            var perChunk = Math.Max(1, chunkBytes / elementSize);
            for (long start = 0; start < elements; start += perChunk)
            {
                var count = Math.Min(perChunk, elements - start);
                using var slice = flat.narrow(0, start, count);
                slice.bytes = new Span<byte>(source + (start * elementSize), checked((int)(count * elementSize)));
            }

            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Writes the element bytes of <paramref name="tensor"/> (any device, any layout) to <paramref name="destination"/> in row-major order.</summary>
    /// <returns>How many bytes were written.</returns>
    public static long WriteTo(torch.Tensor tensor, Stream destination, long chunkBytes = DefaultChunkBytes)
    {
        using var cpu = tensor.cpu();
        using var contiguous = cpu.contiguous();
        var elements = contiguous.numel();
        var elementSize = contiguous.ElementSize;
        if (elements == 0)
        {
            return 0;
        }

        if (elements * elementSize <= chunkBytes)
        {
            destination.Write(contiguous.bytes);
            return elements * elementSize;
        }

        using var flat = contiguous.view(-1);
        var perChunk = Math.Max(1, chunkBytes / elementSize);
        for (long start = 0; start < elements; start += perChunk)
        {
            using var slice = flat.narrow(0, start, Math.Min(perChunk, elements - start));
            destination.Write(slice.bytes);
        }

        return elements * elementSize;
    }
}
