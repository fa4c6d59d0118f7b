using System.Globalization;
using LoQT.Training;

namespace LoQT.Tool.Rendering;

/// <summary>
/// Renders training progress on stderr: a bar redrawn in place on a terminal, one line per report otherwise
/// (logs, CI), so stdout stays free for results.
/// </summary>
internal sealed class TrainingProgressBar : IProgress<TrainingStepReport>
{
    private const int BarWidth = 24;
    private readonly TextWriter _output;
    private readonly bool _interactive;
    private readonly int _everyNonInteractive;

    public TrainingProgressBar(TextWriter? output = null, bool? interactive = null, int everyNonInteractive = 10)
    {
        _output = output ?? Console.Error;
        _interactive = interactive ?? !Console.IsErrorRedirected;
        _everyNonInteractive = Math.Max(1, everyNonInteractive);
    }

    public void Report(TrainingStepReport value)
    {
        var line = Format(value);
        if (_interactive)
        {
            _output.Write("\r" + line.PadRight(Math.Max(line.Length, 100)));
            if (value.Step >= value.TotalSteps || value.EvalLoss is not null || value.Reinitialized)
            {
                _output.WriteLine();
            }
        }
        else if (value.Step % _everyNonInteractive == 0 || value.Step >= value.TotalSteps || value.EvalLoss is not null || value.Step == 1)
        {
            _output.WriteLine(line);
        }
    }

    internal static string Format(TrainingStepReport r)
    {
        var filled = r.TotalSteps > 0 ? (int)(BarWidth * Math.Min(1.0, (double)r.Step / r.TotalSteps)) : 0;
        var bar = new string('#', filled) + new string('.', BarWidth - filled);
        var text = string.Create(CultureInfo.InvariantCulture,
            $"[{bar}] step {r.Step}/{r.TotalSteps}  loss {r.Loss:0.0000}  lr {r.LearningRate:0.###e+0}  {r.TokensPerSecond:0} tok/s  " +
            $"elapsed {Duration(r.Elapsed)}  ETA {(r.Remaining is { } eta ? Duration(eta) : "?")}  RSS {ProcessMemory.Format(r.ResidentBytes)}");
        if (r.Reinitialized)
        {
            text += "  [merged + new projections]";
        }

        if (r.EvalLoss is { } eval)
        {
            text += string.Create(CultureInfo.InvariantCulture, $"  eval loss {eval:0.0000} ppl {Math.Exp(eval):0.00}");
        }

        return text;
    }

    private static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"m\:ss", CultureInfo.InvariantCulture);
}
