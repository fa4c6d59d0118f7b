using System.CommandLine;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt bench</c>: the parent of the micro-benchmarks (one subcommand each).</summary>
internal static class BenchCommand
{
    public static Command Create() =>
        new("bench", "Measure the speed of LoQT's building blocks on this machine.")
        {
            BenchNf4Command.Create(),
            BenchLoadCommand.Create(),
            BenchTrainCommand.Create(),
        };
}
