namespace LoQT.Tool.Commands;

/// <summary>What an <c>error: …</c> line says about an exception: its message without .NET's parameter decorations.</summary>
internal static class CliErrorMessage
{
    /// <summary>
    /// The message, minus the " (Parameter 'x')" that <see cref="ArgumentException"/> appends (it names a C# parameter
    /// or the option, which the text already names) and the "Actual value was …" line of
    /// <see cref="ArgumentOutOfRangeException"/> (the text already says the value); the full exception when
    /// <c>LOQT_DEBUG=1</c>.
    /// </summary>
    public static string For(Exception e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (Environment.GetEnvironmentVariable("LOQT_DEBUG") == "1")
        {
            return e.ToString();
        }

        var message = e.Message;
        if (e is ArgumentOutOfRangeException { ActualValue: not null })
        {
            message = message.Split('\n')[0].TrimEnd('\r');
        }

        return e is ArgumentException { ParamName: { } name } ? message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : message;
    }
}
