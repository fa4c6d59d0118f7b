using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace LoQT.SafeTensors;

/// <summary>A parsed and validated safetensors header: the metadata and every tensor's entry.</summary>
internal sealed class SafeTensorsHeader
{
    /// <summary>The bytes before the JSON: a little-endian unsigned 64-bit JSON length.</summary>
    public const int LengthPrefixBytes = 8;

    /// <summary>The largest JSON header accepted, as in the reference implementation: anything larger is not a real header.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The header key that holds the string-to-string metadata rather than a tensor.</summary>
    public const string MetadataKey = "__metadata__";

    private SafeTensorsHeader(IReadOnlyDictionary<string, string> metadata, IReadOnlyList<SafeTensorInfo> tensors)
    {
        Metadata = metadata;
        Tensors = tensors;
        ByName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>The <c>__metadata__</c> map (empty when the header has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensors in the order of their data (by offset; header order among equal offsets).</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>Tensors by name.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> ByName { get; }

    /// <summary>Reads the JSON length from the first 8 bytes and checks it against the file size.</summary>
    /// <param name="prefix">The first bytes of the file (at least 8, unless the file is shorter).</param>
    /// <param name="fileLength">The whole file's length.</param>
    /// <param name="path">The file, for messages.</param>
    /// <returns>The JSON header's length in bytes.</returns>
    public static long ReadJsonLength(ReadOnlySpan<byte> prefix, long fileLength, string path)
    {
        if (fileLength < LengthPrefixBytes)
        {
            throw new InvalidDataException(
                $"{path}: file is {fileLength} bytes, shorter than the {LengthPrefixBytes}-byte header length that starts every safetensors file (truncated?)");
        }

        var length = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (length > MaxHeaderBytes)
        {
            throw new InvalidDataException(
                $"{path}: header length {length} is larger than the {MaxHeaderBytes}-byte limit (not a safetensors file, or a corrupt one)");
        }

        if ((long)length > fileLength - LengthPrefixBytes)
        {
            throw new InvalidDataException(
                $"{path}: header length {length} runs past the end of the file ({fileLength} bytes; truncated?)");
        }

        return (long)length;
    }

    /// <summary>Parses the JSON header and validates every tensor against the data section.</summary>
    /// <param name="json">The JSON header (possibly padded with trailing spaces).</param>
    /// <param name="dataLength">Bytes in the data section (file length − 8 − JSON length).</param>
    /// <param name="path">The file, for messages.</param>
    public static SafeTensorsHeader Parse(ReadOnlySpan<byte> json, long dataLength, string path)
    {
        var (metadata, tensors) = ParseJson(json, path);
        return new SafeTensorsHeader(metadata, ValidateLayout(tensors, dataLength, path));
    }

    private static (Dictionary<string, string> Metadata, List<SafeTensorInfo> Tensors) ParseJson(ReadOnlySpan<byte> json, string path)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var tensors = new List<SafeTensorInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 8 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InvalidDataException($"{path}: header is not a JSON object");
            }

            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var name = reader.GetString()!;
                if (!seen.Add(name))
                {
                    throw new InvalidDataException(
                        name == MetadataKey
                            ? $"{path}: header has more than one {MetadataKey} entry"
                            : $"{path}: tensor '{name}' appears more than once in the header");
                }

                reader.Read();
                if (name == MetadataKey)
                {
                    ReadMetadata(ref reader, metadata, path);
                }
                else
                {
                    tensors.Add(ReadTensorEntry(ref reader, name, path));
                }
            }

            // Anything but whitespace after the object makes Read throw; the format allows only space padding.
            if (reader.Read())
            {
                throw new InvalidDataException($"{path}: unexpected content after the header's JSON object");
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: header is not valid JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            // Utf8JsonReader getters throw this on a token of the wrong kind, e.g. a number where a string belongs.
            throw new InvalidDataException($"{path}: header is not a valid safetensors header ({e.Message})", e);
        }

        return (metadata, tensors);
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata, string path)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidDataException($"{path}: {MetadataKey} must be an object mapping strings to strings");
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = reader.GetString()!;
            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
            {
                throw new InvalidDataException(
                    $"{path}: {MetadataKey} entry '{key}' is a {Describe(reader.TokenType)}; the format allows only string values");
            }

            if (!metadata.TryAdd(key, reader.GetString()!))
            {
                throw new InvalidDataException($"{path}: {MetadataKey} entry '{key}' appears more than once");
            }
        }
    }

    private static SafeTensorInfo ReadTensorEntry(ref Utf8JsonReader reader, string name, string path)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Bad(path, name, $"entry is a {Describe(reader.TokenType)}, not an object with dtype, shape and data_offsets");
        }

        string? dtypeName = null;
        long[]? shape = null;
        long[]? offsets = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var field = reader.GetString()!;
            reader.Read();
            switch (field)
            {
                case "dtype":
                    if (dtypeName is not null)
                    {
                        throw Bad(path, name, "has more than one dtype");
                    }

                    dtypeName = reader.TokenType == JsonTokenType.String
                        ? reader.GetString()!
                        : throw Bad(path, name, $"dtype is a {Describe(reader.TokenType)}, not a string");
                    break;
                case "shape":
                    shape = shape is null
                        ? ReadIntegers(ref reader, path, name, "shape")
                        : throw Bad(path, name, "has more than one shape");
                    break;
                case "data_offsets":
                    offsets = offsets is null
                        ? ReadIntegers(ref reader, path, name, "data_offsets")
                        : throw Bad(path, name, "has more than one data_offsets");
                    break;
                default:
                    // Unknown fields are ignored, as the reference implementation does.
                    reader.Skip();
                    break;
            }
        }

        if (dtypeName is null || shape is null || offsets is null)
        {
            var missing = new[] { ("dtype", dtypeName is null), ("shape", shape is null), ("data_offsets", offsets is null) }
                .Where(f => f.Item2).Select(f => f.Item1);
            throw Bad(path, name, "is missing " + string.Join(" and ", missing));
        }

        if (!SafeTensorDTypes.TryParse(dtypeName, out var dtype))
        {
            throw Bad(path, name, $"unknown dtype '{dtypeName}' (supported: {string.Join(", ", SafeTensorDTypes.All.Select(d => d.ToHeaderName()))})");
        }

        if (offsets.Length != 2)
        {
            throw Bad(path, name, $"data_offsets must be [begin, end], got {offsets.Length} numbers");
        }

        var (begin, end) = (offsets[0], offsets[1]);
        if (end < begin)
        {
            throw Bad(path, name, $"data_offsets [{begin}, {end}] end before they begin");
        }

        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (product, dim) => product * dim) * dtype.ElementSize());
        }
        catch (OverflowException)
        {
            throw Bad(path, name, $"shape [{string.Join(", ", shape)}] has more elements than a file can hold");
        }

        if (end - begin != expected)
        {
            throw Bad(path, name,
                $"data_offsets [{begin}, {end}] span {end - begin} bytes, but shape [{string.Join(", ", shape)}] of {dtypeName} needs {expected}");
        }

        return new SafeTensorInfo(name, dtype, shape, begin, end - begin);
    }

    private static long[] ReadIntegers(ref Utf8JsonReader reader, string path, string name, string field)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Bad(path, name, $"{field} is a {Describe(reader.TokenType)}, not an array of non-negative integers");
        }

        var values = new List<long>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var value) || value < 0)
            {
                var text = reader.TokenType == JsonTokenType.Number ? Encoding.UTF8.GetString(reader.ValueSpan) : Describe(reader.TokenType);
                throw Bad(path, name, $"{field} holds {text}; only non-negative integers are allowed");
            }

            values.Add(value);
        }

        return [.. values];
    }

    private static SafeTensorInfo[] ValidateLayout(List<SafeTensorInfo> tensors, long dataLength, string path)
    {
        foreach (var tensor in tensors)
        {
            if (tensor.DataOffset + tensor.ByteLength > dataLength)
            {
                throw Bad(path, tensor.Name,
                    $"data_offsets [{tensor.DataOffset}, {tensor.DataOffset + tensor.ByteLength}] run past the end of the data section ({dataLength} bytes; truncated?)");
            }
        }

        // Stable sort: zero-length tensors sharing an offset keep their header order.
        var ordered = tensors.OrderBy(t => t.DataOffset).ThenBy(t => t.ByteLength).ToArray();
        long covered = 0;
        SafeTensorInfo? previous = null;
        foreach (var tensor in ordered)
        {
            if (tensor.DataOffset < covered)
            {
                throw Bad(path, tensor.Name,
                    $"data_offsets [{tensor.DataOffset}, {tensor.DataOffset + tensor.ByteLength}] overlap tensor '{previous!.Name}' [{previous.DataOffset}, {covered}]");
            }

            if (tensor.DataOffset > covered)
            {
                throw Bad(path, tensor.Name,
                    $"data begins at {tensor.DataOffset}, leaving a gap of {tensor.DataOffset - covered} bytes after " +
                    (previous is null ? "the start of the data section" : $"tensor '{previous.Name}'") +
                    "; the format requires tensors to be packed without gaps");
            }

            covered = tensor.DataOffset + tensor.ByteLength;
            previous = tensor;
        }

        if (covered != dataLength)
        {
            throw new InvalidDataException(
                $"{path}: the data section has {dataLength - covered} bytes after the last tensor's data ({dataLength} bytes in all, tensors cover {covered}); the format requires tensors to cover it exactly");
        }

        return ordered;
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "object",
        JsonTokenType.StartArray => "array",
        JsonTokenType.String => "string",
        JsonTokenType.Number => "number",
        JsonTokenType.True or JsonTokenType.False => "boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };

    private static InvalidDataException Bad(string path, string tensor, string problem) =>
        new($"{path}: tensor '{tensor}': {problem}");
}
