namespace LoQT.Tests.Hub;

/// <summary>
/// Switchable misbehaviour of <see cref="LoopbackHubServer"/>. Each rule applies to the next <c>times</c> requests whose
/// method and path match, then expires.
/// </summary>
internal sealed class LoopbackHubFaults
{
    private readonly Lock gate = new();
    private readonly List<Rule> rules = [];

    /// <summary>Serve LFS objects with wrong bytes of the right length (a sha256 mismatch for the client).</summary>
    public bool CorruptLfsBodies { get; set; }

    /// <summary>Quote the request's <c>Authorization</c> header in every error message (to prove the client redacts it).</summary>
    public bool EchoAuthorizationInErrors { get; set; }

    /// <summary>Answer the next matching requests with <paramref name="status"/> (and a <c>Retry-After</c> when given).</summary>
    public void FailNext(int status, int times = 1, string? pathContains = null, string? method = null, int? retryAfterSeconds = null) =>
        Add(new Rule(FaultKind.Status, times, pathContains, method) { Status = status, RetryAfterSeconds = retryAfterSeconds });

    /// <summary>Send the headers and the first <paramref name="afterBytes"/> bytes of the next matching bodies, then drop the connection.</summary>
    public void DropConnectionNext(long afterBytes, int times = 1, string? pathContains = null) =>
        Add(new Rule(FaultKind.Drop, times, pathContains, "GET") { AfterBytes = afterBytes });

    /// <summary>Send the headers and the first <paramref name="afterBytes"/> bytes of the next matching bodies, then nothing for <paramref name="silence"/>.</summary>
    public void StallBodyNext(long afterBytes, TimeSpan silence, int times = 1, string? pathContains = null) =>
        Add(new Rule(FaultKind.Stall, times, pathContains, "GET") { AfterBytes = afterBytes, Delay = silence });

    /// <summary>Wait <paramref name="delay"/> before answering the next matching requests.</summary>
    public void DelayNext(TimeSpan delay, int times = 1, string? pathContains = null, string? method = null) =>
        Add(new Rule(FaultKind.Delay, times, pathContains, method) { Delay = delay });

    /// <summary>Takes (and consumes) the first matching rule of <paramref name="kind"/>.</summary>
    internal Rule? Take(FaultKind kind, string method, string path)
    {
        lock (gate)
        {
            var rule = rules.FirstOrDefault(r => r.Kind == kind && r.Remaining > 0 &&
                                                 (r.Method is null || r.Method == method) &&
                                                 (r.PathContains is null || path.Contains(r.PathContains, StringComparison.Ordinal)));
            if (rule is not null)
            {
                rule.Remaining--;
            }

            return rule;
        }
    }

    private void Add(Rule rule)
    {
        lock (gate)
        {
            rules.Add(rule);
        }
    }

    internal enum FaultKind
    {
        Status,
        Drop,
        Delay,
        Stall,
    }

    internal sealed class Rule(FaultKind kind, int times, string? pathContains, string? method)
    {
        public FaultKind Kind { get; } = kind;

        public int Remaining { get; set; } = times;

        public string? PathContains { get; } = pathContains;

        public string? Method { get; } = method;

        public int Status { get; init; }

        public int? RetryAfterSeconds { get; init; }

        public long AfterBytes { get; init; }

        public TimeSpan Delay { get; init; }
    }
}
