using LoQT.Tests.Tool;

namespace LoQT.Tests.Hub;

/// <summary>The in-process <c>loqt</c> runner under its earlier name, for tests written against it: see <see cref="ToolRunner"/>.</summary>
internal static class HubCliRunner
{
    public static Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args) => ToolRunner.RunAsync(args);

    public static string LastLine(string text) => ToolRunner.LastLine(text);
}
