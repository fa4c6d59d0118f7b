using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace LoQT.Tests.Export;

/// <summary>
/// A reader of bitsandbytes NF4 safetensors written from design.md's description alone, sharing no code with the
/// library: it parses the safetensors header itself (u64 little-endian length, JSON, raw data), follows
/// <c>model.safetensors.index.json</c>, reads the quant state JSON, unpacks the nibbles (first element high), looks the
/// codes up in the stored code table, multiplies by the block's absmax, and undoes double quantization
/// (absmax = nested_map[code] · nested_absmax[block / nested_blocksize] + nested_offset).
/// </summary>
internal sealed class IndependentBnbReader
{
    /// <summary>The NF4 code table as design.md lists it.</summary>
    public static readonly float[] DesignCodebook =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f, -0.18477343022823334f,
        -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    private readonly Dictionary<string, Entry> entries = new(StringComparer.Ordinal);

    public IndependentBnbReader(string folder)
    {
        var index = Path.Combine(folder, "model.safetensors.index.json");
        var files = File.Exists(index)
            ? JsonDocument.Parse(File.ReadAllText(index)).RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct()
            : ["model.safetensors"];
        foreach (var file in files)
        {
            var path = Path.Combine(folder, file);
            var bytes = File.ReadAllBytes(path);
            var headerLength = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(bytes));
            using var header = JsonDocument.Parse(bytes.AsMemory(8, headerLength));
            foreach (var tensor in header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__"))
            {
                var offsets = tensor.Value.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt64()).ToArray();
                entries[tensor.Name] = new Entry(
                    file,
                    tensor.Value.GetProperty("dtype").GetString()!,
                    tensor.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(),
                    bytes.AsSpan(8 + headerLength + (int)offsets[0], (int)(offsets[1] - offsets[0])).ToArray());
            }
        }
    }

    public IReadOnlyCollection<string> Names => entries.Keys;

    public Entry this[string name] => entries[name];

    public bool Contains(string name) => entries.ContainsKey(name);

    /// <summary>Reads one quantized weight: the stored parts and its dequantized fp32 values.</summary>
    public Nf4Weight ReadNf4(string weight)
    {
        var state = JsonDocument.Parse(Encoding.UTF8.GetString(entries[weight + ".quant_state.bitsandbytes__nf4"].Data)).RootElement;
        var shape = state.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
        var blockSize = state.GetProperty("blocksize").GetInt32();
        var count = checked((int)shape.Aggregate(1L, (a, b) => a * b));
        var packed = entries[weight].Data;
        var quantMap = Floats(entries[weight + ".quant_map"].Data);
        var storedAbsmax = entries[weight + ".absmax"];

        float[] absmax;
        if (state.TryGetProperty("nested_blocksize", out var nestedBlockSizeElement))
        {
            var nestedBlockSize = nestedBlockSizeElement.GetInt32();
            var nested = Floats(entries[weight + ".nested_absmax"].Data);
            var nestedMap = Floats(entries[weight + ".nested_quant_map"].Data);
            var offset = (float)state.GetProperty("nested_offset").GetDouble();
            absmax = storedAbsmax.Data.Select((code, b) => (nestedMap[code] * nested[b / nestedBlockSize]) + offset).ToArray();
        }
        else
        {
            absmax = Floats(storedAbsmax.Data);
        }

        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            var pair = packed[i / 2];
            var code = i % 2 == 0 ? pair >> 4 : pair & 0x0F;
            values[i] = quantMap[code] * absmax[i / blockSize];
        }

        return new Nf4Weight(shape, blockSize, state.GetProperty("dtype").GetString()!, packed, storedAbsmax, quantMap, values,
            state.TryGetProperty("nested_blocksize", out _) ? entries[weight + ".nested_absmax"].Data : null,
            state.TryGetProperty("nested_offset", out var o) ? (float)o.GetDouble() : null);
    }

    public static float[] Floats(byte[] data)
    {
        var values = new float[data.Length / 4];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(i * 4));
        }

        return values;
    }

    /// <summary>bf16 bit patterns (the upper halves of fp32) as floats.</summary>
    public static float[] BFloat16s(byte[] data)
    {
        var values = new float[data.Length / 2];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(i * 2)) << 16);
        }

        return values;
    }

    public sealed record Entry(string File, string DType, long[] Shape, byte[] Data);

    public sealed record Nf4Weight(
        long[] Shape, int BlockSize, string DType, byte[] Packed, Entry Absmax, float[] QuantMap, float[] Values, byte[]? NestedAbsmax, float? NestedOffset);
}
