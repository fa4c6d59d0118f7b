using System.CommandLine;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt bench</c>: the parent of the micro-benchmarks (one subcommand each).</summary>
internal static class BenchCommand
{
    public static Command Create() =>
        new("bench", "Measure LoQT on this machine: NF4 kernel speed, and the memory and time of real training steps against the planner.")
        {
            BenchNf4Command.Create(),
            BenchLoadCommand.Create(),
            BenchTrainCommand.Create(),
            BenchMemoryCommand.Create(),
        };
}
