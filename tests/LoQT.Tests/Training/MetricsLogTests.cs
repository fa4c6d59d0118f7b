using LoQT.Training;

namespace LoQT.Tests.Training;

public sealed class MetricsLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loqt-metrics-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void WriteSteps(MetricsLog log, int from, int to)
    {
        for (var s = from; s <= to; s++)
        {
            log.Write(new Dictionary<string, object?> { ["step"] = s, ["loss"] = 1.0 / s });
        }
    }

    [Fact]
    public void Resume_DropsLinesWrittenAfterTheCheckpointStep()
    {
        using (var log = MetricsLog.Open(_dir))
        {
            WriteSteps(log, 1, 5);
        }

        using (var log = MetricsLog.Open(_dir, resumeAfterStep: 3))
        {
            WriteSteps(log, 4, 6);
        }

        var steps = MetricsLog.Read(Path.Combine(_dir, MetricsLog.FileName)).Select(r => r.GetProperty("step").GetInt32());
        Assert.Equal([1, 2, 3, 4, 5, 6], steps);
    }

    [Fact]
    public void FreshRun_StartsAnEmptyLog()
    {
        using (var log = MetricsLog.Open(_dir))
        {
            WriteSteps(log, 1, 2);
        }

        using (MetricsLog.Open(_dir))
        {
        }

        Assert.Empty(MetricsLog.Read(Path.Combine(_dir, MetricsLog.FileName)));
    }
}
