using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LoQT.Tests.Support;

/// <summary>
/// Runs the real <c>loqt</c> tool (LoQT.Tool.dll beside the tests) in a child process, for what an in-process run cannot
/// show: the peak memory of one command alone.
/// </summary>
internal static class ToolProcess
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "LoQT.Tool.dll"));
        foreach (var argument in args)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        using var cancel = new CancellationTokenSource(timeout);
        var output = process.StandardOutput.ReadToEndAsync(cancel.Token);
        var error = process.StandardError.ReadToEndAsync(cancel.Token);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"loqt {string.Join(' ', args)} ran longer than {timeout.TotalSeconds} s");
        }

        return (process.ExitCode, await output, await error);
    }

    // The dotnet host that runs this test process: <root>/shared/Microsoft.NETCore.App/<version>/ is the runtime folder.
    private static string DotnetHost()
    {
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var host = Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        return File.Exists(host) ? host : "dotnet";
    }
}
