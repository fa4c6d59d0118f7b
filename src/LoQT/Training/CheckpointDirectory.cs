using System.Globalization;
using System.Text.Json;

namespace LoQT.Training;

/// <summary>
/// The checkpoints of a run's output directory: each in its own <c>checkpoint-NNNNNNN</c> folder, written in a
/// temporary folder and renamed into place when complete, with <c>latest.json</c> (replaced atomically) naming the
/// newest one. So the output directory always holds a complete checkpoint, whatever moment a run is stopped at.
/// </summary>
public static class CheckpointDirectory
{
    /// <summary>The pointer file naming the newest checkpoint.</summary>
    public const string LatestFileName = "latest.json";

    /// <summary>The file every complete checkpoint holds (written last).</summary>
    public const string TrainerStateFileName = "trainer_state.json";

    private const string Prefix = "checkpoint-";

    /// <summary>
    /// Writes a checkpoint: <paramref name="writeInto"/> fills a fresh temporary folder, which is then renamed to
    /// <c>checkpoint-{step}</c> and recorded in <c>latest.json</c>. Older checkpoints beyond <paramref name="keep"/> are deleted.
    /// </summary>
    /// <returns>The checkpoint folder.</returns>
    public static string Save(string outputDirectory, long step, Action<string> writeInto, int keep = 2)
    {
        ArgumentNullException.ThrowIfNull(writeInto);
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        Directory.CreateDirectory(outputDirectory);
        var name = Prefix + step.ToString("D7", CultureInfo.InvariantCulture);
        var final = Path.Combine(outputDirectory, name);
        var temp = Path.Combine(outputDirectory, $".{name}.{Environment.ProcessId}.tmp");
        if (Directory.Exists(temp))
        {
            Directory.Delete(temp, recursive: true);
        }

        Directory.CreateDirectory(temp);
        try
        {
            writeInto(temp);
            if (!File.Exists(Path.Combine(temp, TrainerStateFileName)))
            {
                throw new InvalidOperationException($"A checkpoint must contain {TrainerStateFileName}.");
            }

            if (Directory.Exists(final))
            {
                Directory.Delete(final, recursive: true); // the same step saved again (e.g. Ctrl-C right after a save)
            }

            Directory.Move(temp, final);
        }
        catch
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }

            throw;
        }

        var latest = Path.Combine(outputDirectory, LatestFileName);
        var latestTemp = latest + ".tmp";
        File.WriteAllText(latestTemp, JsonSerializer.Serialize(new Dictionary<string, object> { ["checkpoint"] = name, ["step"] = step }));
        File.Move(latestTemp, latest, overwrite: true);

        foreach (var old in List(outputDirectory).Where(c => c.Name != name).OrderByDescending(c => c.Step).Skip(keep - 1))
        {
            Directory.Delete(old.Path, recursive: true);
        }

        return final;
    }

    /// <summary>
    /// The checkpoint a path means: the path itself when it holds <c>trainer_state.json</c>, else the checkpoint that
    /// its <c>latest.json</c> names. Null when it is neither (e.g. a plain Hugging Face model directory).
    /// </summary>
    public static string? Resolve(string path)
    {
        if (File.Exists(Path.Combine(path, TrainerStateFileName)))
        {
            return path;
        }

        var latest = Path.Combine(path, LatestFileName);
        if (!File.Exists(latest))
        {
            return null;
        }

        using var doc = JsonDocument.Parse(File.ReadAllText(latest));
        var name = doc.RootElement.GetProperty("checkpoint").GetString()
            ?? throw new InvalidDataException($"{latest}: 'checkpoint' is null.");
        var checkpoint = Path.Combine(path, name);
        if (!File.Exists(Path.Combine(checkpoint, TrainerStateFileName)))
        {
            throw new InvalidDataException($"{latest} names {name}, which is missing or incomplete.");
        }

        return checkpoint;
    }

    private static IEnumerable<(string Name, string Path, long Step)> List(string outputDirectory) =>
        Directory.EnumerateDirectories(outputDirectory, Prefix + "*")
            .Select(p => (Name: System.IO.Path.GetFileName(p), Path: p))
            .Select(c => (c.Name, c.Path, Step: long.TryParse(c.Name[Prefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : -1))
            .Where(c => c.Step >= 0);
}
