namespace LoQT.Tests.Support;

/// <summary>
/// Clears the Hugging Face environment variables for one test and puts them back afterwards. Only for tests in
/// <see cref="ProcessEnvironmentCollection"/>, which run alone.
/// </summary>
internal sealed class EnvironmentScope : IDisposable
{
    private static readonly string[] Variables =
        ["HF_ENDPOINT", "HF_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"];

    private readonly Dictionary<string, string?> saved = Variables.ToDictionary(v => v, Environment.GetEnvironmentVariable);

    public EnvironmentScope()
    {
        foreach (var variable in Variables)
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    public void Set(string variable, string? value) => Environment.SetEnvironmentVariable(variable, value);

    public void Dispose()
    {
        foreach (var (variable, value) in saved)
        {
            Environment.SetEnvironmentVariable(variable, value);
        }
    }
}
