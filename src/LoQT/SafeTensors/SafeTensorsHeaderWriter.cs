using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace LoQT.SafeTensors;

/// <summary>Builds the bytes that precede the data section: the length prefix and the space-padded JSON header.</summary>
internal static class SafeTensorsHeaderWriter
{
    private const int Alignment = 8;

    // Relaxed escaping keeps names and metadata readable (the reference writer does not escape non-ASCII either).
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// The 8-byte little-endian JSON length followed by the JSON, padded with spaces so the data section starts at a
    /// multiple of 8, laid out as the reference (Python/Rust) writer does: compact JSON, the tensors in the given order, then
    /// <c>__metadata__</c> (when there is any).
    /// </summary>
    public static byte[] Build(IEnumerable<SafeTensorInfo> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var json = new MemoryStream();
        using (var writer = new Utf8JsonWriter(json, Options))
        {
            writer.WriteStartObject();
            foreach (var tensor in tensors)
            {
                writer.WriteStartObject(tensor.Name);
                writer.WriteString("dtype", tensor.DType.ToHeaderName());
                writer.WriteStartArray("shape");
                foreach (var dim in tensor.Shape)
                {
                    writer.WriteNumberValue(dim);
                }

                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(tensor.DataOffset);
                writer.WriteNumberValue(tensor.DataOffset + tensor.ByteLength);
                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(SafeTensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata)
                {
                    writer.WriteString(key, value);
                }

                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        var jsonLength = (int)json.Length;
        var padded = (jsonLength + Alignment - 1) / Alignment * Alignment;
        var bytes = new byte[SafeTensorsHeader.LengthPrefixBytes + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        json.GetBuffer().AsSpan(0, jsonLength).CopyTo(bytes.AsSpan(SafeTensorsHeader.LengthPrefixBytes));
        bytes.AsSpan(SafeTensorsHeader.LengthPrefixBytes + jsonLength).Fill((byte)' ');
        return bytes;
    }
}
