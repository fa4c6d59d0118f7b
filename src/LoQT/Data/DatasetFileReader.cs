using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace LoQT.Data;

/// <summary>
/// Finds a dataset's files and reads their records one line at a time: <c>.txt</c> (a document per non-blank line,
/// or the whole file) and <c>.jsonl</c> (<c>"text"</c>, <c>"prompt"</c>+<c>"completion"</c>, or <c>"input_ids"</c>
/// per line). Malformed lines are errors that say <c>file:line</c>.
/// </summary>
internal static class DatasetFileReader
{
    public const string SupportedFiles = ".txt or .jsonl files, or a directory of them";

    /// <summary>The files of a dataset path: the file itself, or a directory's .txt/.jsonl files (recursively, hidden ones left out) in ordinal order of their relative paths.</summary>
    public static IReadOnlyList<string> ListFiles(string path)
    {
        if (File.Exists(path))
        {
            if (!IsSupported(path))
            {
                throw new NotSupportedException($"Dataset file '{path}' is not supported: expected {SupportedFiles}.");
            }

            return [path];
        }

        if (!Directory.Exists(path))
        {
            throw new FileNotFoundException($"Dataset '{path}' does not exist.", path);
        }

        var files = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
            .Where(IsSupported)
            .Select(f => (Full: f, Relative: Path.GetRelativePath(path, f)))
            .Where(f => !f.Relative.Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.')))
            .OrderBy(f => f.Relative, StringComparer.Ordinal)
            .Select(f => f.Full)
            .ToList();
        if (files.Count == 0)
        {
            throw new InvalidDataException($"Dataset directory '{path}' has no .txt or .jsonl files.");
        }

        return files;
    }

    /// <summary>The records of one file, in order. Blank lines are skipped.</summary>
    /// <param name="file">A .txt or .jsonl file.</param>
    /// <param name="wholeTextFile">A .txt file is one document rather than one per line.</param>
    /// <param name="cancellationToken">Stops reading.</param>
    public static async IAsyncEnumerable<DatasetRecord> ReadAsync(
        string file, bool wholeTextFile, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var isText = file.EndsWith(".txt", StringComparison.OrdinalIgnoreCase);
        if (isText && wholeTextFile)
        {
            var text = await File.ReadAllTextAsync(file, Encoding.UTF8, cancellationToken).ConfigureAwait(false);
            if (text.Length > 0)
            {
                yield return new DatasetRecord(file, 1, DatasetRecordKind.Text) { Text = text };
            }

            yield break;
        }

        using var reader = new StreamReader(file, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        long lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            yield return isText
                ? new DatasetRecord(file, lineNumber, DatasetRecordKind.Text) { Text = line }
                : ParseJsonLine(file, lineNumber, line);
        }
    }

    /// <summary>One .jsonl line as a record; the kind follows from its fields (<c>input_ids</c>, then <c>prompt</c>/<c>completion</c>, then <c>text</c>).</summary>
    public static DatasetRecord ParseJsonLine(string file, long lineNumber, string line)
    {
        var location = $"{file}:{lineNumber}";
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{location}: not valid JSON ({e.Message})", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{location}: expected a JSON object, got {Describe(root)}.");
            }

            if (root.TryGetProperty("input_ids", out var ids))
            {
                return new DatasetRecord(file, lineNumber, DatasetRecordKind.PreTokenized) { InputIds = ReadIds(ids, location) };
            }

            var hasPrompt = root.TryGetProperty("prompt", out var prompt);
            var hasCompletion = root.TryGetProperty("completion", out var completion);
            if (hasPrompt || hasCompletion)
            {
                if (!hasPrompt || !hasCompletion)
                {
                    throw new InvalidDataException($"{location}: has \"{(hasPrompt ? "prompt" : "completion")}\" but no \"{(hasPrompt ? "completion" : "prompt")}\".");
                }

                return new DatasetRecord(file, lineNumber, DatasetRecordKind.PromptCompletion)
                {
                    Prompt = ReadString(prompt, "prompt", location),
                    Completion = ReadString(completion, "completion", location),
                };
            }

            if (root.TryGetProperty("text", out var text))
            {
                return new DatasetRecord(file, lineNumber, DatasetRecordKind.Text) { Text = ReadString(text, "text", location) };
            }

            var keys = string.Join(", ", root.EnumerateObject().Select(p => "\"" + p.Name + "\""));
            throw new InvalidDataException(
                $"{location}: expected \"text\", \"prompt\" and \"completion\", or \"input_ids\"; found {(keys.Length == 0 ? "no fields" : keys)}.");
        }
    }

    private static bool IsSupported(string file)
        => file.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);

    private static string ReadString(JsonElement value, string name, string location)
        => value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new InvalidDataException($"{location}: \"{name}\" must be a string, got {Describe(value)}.");

    private static int[] ReadIds(JsonElement value, string location)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException($"{location}: \"input_ids\" must be an array of token ids, got {Describe(value)}.");
        }

        var ids = new int[value.GetArrayLength()];
        var i = 0;
        foreach (var element in value.EnumerateArray())
        {
            if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out var id) || id < 0)
            {
                throw new InvalidDataException($"{location}: \"input_ids\"[{i}] must be a non-negative integer token id, got {Describe(element)}.");
            }

            ids[i++] = id;
        }

        return ids;
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "the number " + value.GetRawText(),
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => value.ValueKind.ToString(),
    };
}
