namespace LoQT.Models.Llama;

/// <summary>How <see cref="LlamaGenerator.Generate"/> picks tokens.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate.</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>Softmax temperature; 0 picks the most likely token every time (greedy).</summary>
    public double Temperature { get; init; }

    /// <summary>Nucleus sampling: sample only among the most likely tokens whose probabilities add up to this (1 = all).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Seed for sampling; the same seed, prompt and model give the same text.</summary>
    public int Seed { get; init; }

    /// <summary>Reuse keys/values of earlier tokens (on by default); off runs the whole sequence for every new token.</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>Tokens that end generation (not returned); <c>null</c> for the config's <c>eos_token_id</c>s.</summary>
    public IReadOnlyCollection<int>? StopTokenIds { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value out of range; the message names the option.</exception>
    public void Validate()
    {
        if (MaxNewTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens, "max new tokens must be 0 or more");
        }

        if (!(Temperature >= 0) || double.IsInfinity(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "temperature must be 0 (greedy) or positive");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top-p must be in (0, 1]");
        }
    }
}
