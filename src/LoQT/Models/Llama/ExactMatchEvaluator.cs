using LoQT.Data;

namespace LoQT.Models.Llama;

/// <summary>One prompt with the one answer that counts as right (an arithmetic problem and its result, say).</summary>
/// <param name="Prompt">The text the model continues (the tokenizer's special tokens, e.g. BOS, are added).</param>
/// <param name="Answer">The continuation that must be generated exactly, up to the end-of-sequence token.</param>
public sealed record ExactMatchItem(string Prompt, string Answer);

/// <summary>What the model answered to one <see cref="ExactMatchItem"/>.</summary>
/// <param name="Item">The prompt and the expected answer.</param>
/// <param name="Generated">The greedy continuation, decoded (special tokens left out).</param>
public sealed record ExactMatchOutcome(ExactMatchItem Item, string Generated)
{
    /// <summary>Whether the continuation is exactly the expected answer.</summary>
    public bool IsCorrect => string.Equals(Generated, Item.Answer, StringComparison.Ordinal);
}

/// <summary>The outcome of <see cref="ExactMatchEvaluator.Evaluate"/>.</summary>
/// <param name="Outcomes">Every item with its generated answer, in the order given.</param>
public sealed record ExactMatchResult(IReadOnlyList<ExactMatchOutcome> Outcomes)
{
    /// <summary>Items answered exactly right.</summary>
    public int Correct => Outcomes.Count(o => o.IsCorrect);

    /// <summary>Items scored.</summary>
    public int Total => Outcomes.Count;

    /// <summary>Share answered exactly right, in [0, 1].</summary>
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
}

/// <summary>
/// Exact-match accuracy of greedy answers: each prompt is continued with <see cref="LlamaGenerator"/> at
/// temperature 0 until the end-of-sequence token, and the decoded continuation must equal the answer exactly.
/// </summary>
public static class ExactMatchEvaluator
{
    /// <summary>Answers every item greedily and compares.</summary>
    /// <param name="model">The model.</param>
    /// <param name="tokenizer">Its tokenizer (its EOS and the config's <c>eos_token_id</c>s end an answer).</param>
    /// <param name="items">Prompts and expected answers.</param>
    /// <param name="progress">Told after each item (items done so far).</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    public static ExactMatchResult Evaluate(
        LlamaForCausalLM model,
        ITokenizer tokenizer,
        IReadOnlyList<ExactMatchItem> items,
        IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(items);
        var generator = new LlamaGenerator(model);
        var stops = model.Config.EosTokenIds.Concat(tokenizer.EosTokenId is { } eos ? [eos] : []).ToArray();
        var outcomes = new List<ExactMatchOutcome>(items.Count);
        foreach (var item in items)
        {
            // One token more than the answer has is enough to decide: a right answer must be followed by EOS, so a
            // longer continuation is wrong whatever comes after; this bounds the cost of a model that never stops.
            var options = new GenerationOptions
            {
                MaxNewTokens = tokenizer.Encode(item.Answer).Count + 1,
                StopTokenIds = stops,
            };
            var ids = generator.Generate(tokenizer.Encode(item.Prompt, addSpecialTokens: true), options, cancellationToken).ToList();
            outcomes.Add(new ExactMatchOutcome(item, tokenizer.Decode(ids)));
            progress?.Report(outcomes.Count);
        }

        return new ExactMatchResult(outcomes);
    }
}
