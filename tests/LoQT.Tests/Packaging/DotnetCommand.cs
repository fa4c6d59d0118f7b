using System.Diagnostics;
using System.Text;

namespace LoQT.Tests.Packaging;

/// <summary>What a child process did: its exit code and everything it printed (stdout and stderr, interleaved as they came).</summary>
public sealed record CommandResult(string CommandLine, string WorkingDirectory, int ExitCode, string Output, TimeSpan Elapsed)
{
    /// <summary>For assertion messages: the command, where it ran, how it ended, and its output.</summary>
    public override string ToString() =>
        $"`{CommandLine}` in {WorkingDirectory} exited with {ExitCode} after {Elapsed.TotalSeconds:0.0} s; output:{Environment.NewLine}{Output}";
}

/// <summary>
/// Runs <c>dotnet</c> (or any program) as a real child process, as a user would from a shell: given arguments, a working
/// folder and environment, with a time limit after which the whole process tree is killed.
/// </summary>
internal static class DotnetCommand
{
    // The test host runs under `dotnet test`, whose MSBuild variables would point a child build at the same MSBuild
    // node settings; a child starts clean instead, and leaves no build server or node behind when it exits.
    private static readonly string[] InheritedMsBuildVariables =
        ["MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly", "MSBUILDNOINPROCNODE"];

    private static readonly Dictionary<string, string> QuietBuildVariables = new(StringComparer.Ordinal)
    {
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_NOLOGO"] = "1",
        ["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1",
        ["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0",
        ["MSBUILDDISABLENODEREUSE"] = "1",
        ["UseSharedCompilation"] = "false",
        ["TERM"] = "dumb",
    };

    public static Task<CommandResult> RunAsync(string workingDirectory, IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] arguments) =>
        RunProgramAsync("dotnet", workingDirectory, environment, timeout, arguments);

    public static async Task<CommandResult> RunProgramAsync(
        string program, string workingDirectory, IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var name in InheritedMsBuildVariables)
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in QuietBuildVariables.Concat(environment))
        {
            start.Environment[name] = value;
        }

        var output = new StringBuilder();
        void Append(string? line)
        {
            if (line is not null)
            {
                lock (output)
                {
                    output.AppendLine(line);
                }
            }
        }

        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            Append($"[killed after the test's limit of {timeout.TotalSeconds:0} s]");
        }

        var commandLine = program + " " + string.Join(' ', arguments.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a));
        lock (output)
        {
            return new CommandResult(commandLine, workingDirectory, process.ExitCode, output.ToString(), clock.Elapsed);
        }
    }
}
