using System.Text.Encodings.Web;
using System.Text.Json;

namespace LoQT.SafeTensors;

/// <summary>A sharded checkpoint's <c>model.safetensors.index.json</c>: which shard file holds each tensor.</summary>
internal sealed class SafeTensorsIndex
{
    /// <summary>The index file name Hugging Face uses for the default base name.</summary>
    public const string DefaultFileName = "model.safetensors.index.json";

    private SafeTensorsIndex(IReadOnlyDictionary<string, string> metadata, IReadOnlyList<string> names, IReadOnlyDictionary<string, string> weightMap)
    {
        Metadata = metadata;
        TensorNames = names;
        WeightMap = weightMap;
    }

    /// <summary>The <c>metadata</c> object, values as text (strings as they are, anything else as its JSON, e.g. <c>total_size</c>'s number).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensor names in the order of <c>weight_map</c>.</summary>
    public IReadOnlyList<string> TensorNames { get; }

    /// <summary>Tensor name → shard file name, relative to the index's folder.</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }

    /// <summary>Reads and checks an index file: a JSON object with a <c>weight_map</c> of strings, no duplicate keys, shard names inside the folder.</summary>
    public static SafeTensorsIndex Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new List<string>();
        var sawWeightMap = false;
        try
        {
            var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InvalidDataException($"{path}: the index is not a JSON object");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var key = reader.GetString()!;
                if (!seen.Add(key))
                {
                    throw new InvalidDataException($"{path}: '{key}' appears more than once");
                }

                reader.Read();
                switch (key)
                {
                    case "metadata" when reader.TokenType == JsonTokenType.StartObject:
                        ReadObject(ref reader, path, "metadata", (k, v) => metadata[k] = v, stringsOnly: false);
                        break;
                    case "weight_map":
                        if (reader.TokenType != JsonTokenType.StartObject)
                        {
                            throw new InvalidDataException($"{path}: weight_map must be an object mapping tensor names to shard file names");
                        }

                        sawWeightMap = true;
                        ReadObject(ref reader, path, "weight_map", (name, file) =>
                        {
                            weightMap[name] = CheckShardName(path, name, file);
                            names.Add(name);
                        }, stringsOnly: true);
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (reader.Read())
            {
                throw new InvalidDataException($"{path}: unexpected content after the index's JSON object");
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: the index is not valid JSON ({e.Message})", e);
        }

        return sawWeightMap
            ? new SafeTensorsIndex(metadata, names, weightMap)
            : throw new InvalidDataException($"{path}: the index has no weight_map");
    }

    /// <summary>Writes an index (indented like Hugging Face's) to <paramref name="path"/>, created new and flushed to disk.</summary>
    public static void Write(string path, long totalSize, IEnumerable<(string Name, string File)> weightMap)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("metadata");
            writer.WriteNumber("total_size", totalSize);
            writer.WriteEndObject();
            writer.WriteStartObject("weight_map");
            foreach (var (name, file) in weightMap)
            {
                writer.WriteString(name, file);
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        stream.WriteByte((byte)'\n');
        stream.Flush(flushToDisk: true);
    }

    private delegate void EntrySink(string key, string value);

    private static void ReadObject(ref Utf8JsonReader reader, string path, string what, EntrySink sink, bool stringsOnly)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = reader.GetString()!;
            if (!seen.Add(key))
            {
                throw new InvalidDataException(what == "weight_map"
                    ? $"{path}: tensor '{key}' appears more than once in weight_map"
                    : $"{path}: {what} entry '{key}' appears more than once");
            }

            reader.Read();
            if (reader.TokenType == JsonTokenType.String)
            {
                sink(key, reader.GetString()!);
            }
            else if (stringsOnly)
            {
                throw new InvalidDataException($"{path}: {what} entry '{key}' is not a string");
            }
            else
            {
                using var value = JsonDocument.ParseValue(ref reader);
                sink(key, value.RootElement.GetRawText());
            }
        }
    }

    private static string CheckShardName(string indexPath, string tensor, string file)
    {
        var folder = Path.GetFullPath(Path.GetDirectoryName(Path.GetFullPath(indexPath))!);
        var full = Path.GetFullPath(Path.Combine(folder, file));
        if (file.Length == 0 || Path.IsPathRooted(file) || !full.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"{indexPath}: tensor '{tensor}' maps to '{file}', which is not a file inside the checkpoint folder");
        }

        return file;
    }
}
