namespace LoQT.Tests.Support;

/// <summary>Tests that change the process environment (HF_* variables): they run alone, never beside other tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    public const string Name = "Process environment";
}
