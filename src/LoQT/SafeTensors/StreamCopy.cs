namespace LoQT.SafeTensors;

/// <summary>Copies an exact number of bytes between streams.</summary>
internal static class StreamCopy
{
    private const int BufferBytes = 1 << 20;

    /// <summary>Copies exactly <paramref name="count"/> bytes from <paramref name="source"/>; a stream that ends early is an error naming <paramref name="tensor"/>.</summary>
    public static void CopyExactly(Stream source, Stream destination, long count, string tensor)
    {
        var buffer = new byte[(int)Math.Min(BufferBytes, Math.Max(count, 1))];
        var left = count;
        while (left > 0)
        {
            var read = source.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (read == 0)
            {
                throw new ArgumentException($"tensor '{tensor}': the data stream ended after {count - left} of {count} bytes", nameof(source));
            }

            destination.Write(buffer, 0, read);
            left -= read;
        }
    }
}
