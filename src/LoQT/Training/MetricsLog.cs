using System.Globalization;
using System.Text;
using System.Text.Json;

namespace LoQT.Training;

/// <summary>
/// The <c>metrics.jsonl</c> log of a training run: one JSON object per line (step, loss, learning rate, throughput,
/// memory, eval results), flushed line by line so a crash loses at most the line being written. Numbers are written
/// with the invariant culture (JSON knows no other).
/// </summary>
public sealed class MetricsLog : IDisposable
{
    /// <summary>The file name inside a run's output directory.</summary>
    public const string FileName = "metrics.jsonl";

    private readonly StreamWriter _writer;

    private MetricsLog(string path, StreamWriter writer)
    {
        Path = path;
        _writer = writer;
    }

    /// <summary>Where the log is.</summary>
    public string Path { get; }

    /// <summary>
    /// Opens the log of <paramref name="outputDirectory"/> for appending. When a run resumes from step
    /// <paramref name="resumeAfterStep"/>, lines of later steps (written after that checkpoint by the interrupted run)
    /// are dropped first, so the log tells one consistent history.
    /// </summary>
    public static MetricsLog Open(string outputDirectory, long? resumeAfterStep = null)
    {
        Directory.CreateDirectory(outputDirectory);
        var path = System.IO.Path.Combine(outputDirectory, FileName);
        if (resumeAfterStep is { } last && File.Exists(path))
        {
            var kept = File.ReadLines(path).Where(line => StepOf(line) is not { } step || step <= last).ToList();
            var temp = path + ".tmp";
            File.WriteAllLines(temp, kept);
            File.Move(temp, path, overwrite: true);
        }
        else if (resumeAfterStep is null && File.Exists(path))
        {
            File.Delete(path); // a fresh run starts a fresh history
        }

        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
        return new MetricsLog(path, new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true });
    }

    /// <summary>Appends one record. Values may be numbers, strings, booleans or null.</summary>
    public void Write(IReadOnlyDictionary<string, object?> record)
    {
        ArgumentNullException.ThrowIfNull(record);
        _writer.WriteLine(JsonSerializer.Serialize(record));
    }

    /// <summary>Reads every record of a log (for tests, charts and the model card).</summary>
    public static IReadOnlyList<JsonElement> Read(string path) =>
        File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    /// <inheritdoc/>
    public void Dispose() => _writer.Dispose();

    private static long? StepOf(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.TryGetProperty("step", out var s) && s.TryGetInt64(out var step) ? step : null;
        }
        catch (JsonException)
        {
            return null; // a torn last line from a crash: drop it with the rest after the checkpoint
        }
    }
}
