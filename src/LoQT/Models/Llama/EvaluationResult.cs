namespace LoQT.Models.Llama;

/// <summary>The outcome of <see cref="LlamaEvaluator.Evaluate"/>.</summary>
/// <param name="Loss">Mean next-token cross-entropy (nats) over every scored token.</param>
/// <param name="Tokens">Tokens scored (targets: positions 1.. of each sequence whose label is not -100).</param>
public sealed record EvaluationResult(double Loss, long Tokens)
{
    /// <summary><c>exp(Loss)</c>.</summary>
    public double Perplexity => Math.Exp(Loss);
}
