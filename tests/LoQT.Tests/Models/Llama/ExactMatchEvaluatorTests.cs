using LoQT.Data;
using LoQT.Models.Llama;
using LoQT.Tests.Support;

namespace LoQT.Tests.Models.Llama;

/// <summary>
/// Exact-match scoring of greedy answers, on a random model of tiny-llama's shape with its real tokenizer: the test
/// first reads the model's greedy continuation, then asks for a prefix of it as the answer, with or without the next
/// token declared end-of-sequence in the model's config.
/// </summary>
public sealed class ExactMatchEvaluatorTests
{
    private const string Prompt = "The quick brown fox";
    private const long Seed = 11;

    private static readonly ITokenizer Tokenizer = TokenizerLoader.FromDirectory(TestPaths.Fixture("tiny-llama"));

    // No stop tokens: the greedy continuation runs its full length.
    private static readonly LlamaConfig Config = LlamaConfig.Load(TestPaths.Fixture("tiny-llama")) with { EosTokenIds = [] };

    private static (string Answer, int Next) GreedyAnswerAndNextToken()
    {
        using var model = LlamaForCausalLM.CreateRandom(Config, seed: Seed);
        var ids = new LlamaGenerator(model)
            .Generate(Tokenizer.Encode(Prompt, addSpecialTokens: true), new GenerationOptions { MaxNewTokens = 4, StopTokenIds = [] })
            .ToArray();
        Assert.DoesNotContain(Tokenizer.EosTokenId!.Value, ids); // the tokenizer's EOS also ends answers; this model must not emit it
        Assert.DoesNotContain(ids[3], ids[..3]); // declared a stop token below, it must first come after the answer
        var answer = Tokenizer.Decode(ids[..3]);
        Assert.Equal(3, Tokenizer.Encode(answer).Count); // so the evaluator lets it generate 3 + 1 tokens
        return (answer, ids[3]);
    }

    [Fact]
    public void AnswerFollowedByAStopToken_IsCorrect()
    {
        var (answer, next) = GreedyAnswerAndNextToken();
        using var model = LlamaForCausalLM.CreateRandom(Config with { EosTokenIds = [next] }, seed: Seed);

        var result = ExactMatchEvaluator.Evaluate(model, Tokenizer, [new ExactMatchItem(Prompt, answer)]);

        var outcome = Assert.Single(result.Outcomes);
        Assert.Equal(answer, outcome.Generated);
        Assert.True(outcome.IsCorrect);
    }

    [Fact]
    public void AnswerTheModelContinuesPast_IsWrong()
    {
        var (answer, _) = GreedyAnswerAndNextToken();
        using var model = LlamaForCausalLM.CreateRandom(Config, seed: Seed);

        var outcome = Assert.Single(ExactMatchEvaluator.Evaluate(model, Tokenizer, [new ExactMatchItem(Prompt, answer)]).Outcomes);

        Assert.StartsWith(answer, outcome.Generated, StringComparison.Ordinal);
        Assert.NotEqual(answer, outcome.Generated);
        Assert.False(outcome.IsCorrect);
    }

    [Fact]
    public void Accuracy_IsTheShareOfItemsAnsweredExactly_InTheOrderGiven()
    {
        var (answer, next) = GreedyAnswerAndNextToken();
        using var model = LlamaForCausalLM.CreateRandom(Config with { EosTokenIds = [next] }, seed: Seed);
        ExactMatchItem[] items = [new(Prompt, "not this"), new(Prompt, answer)];

        var result = ExactMatchEvaluator.Evaluate(model, Tokenizer, items);

        Assert.Equal(items, result.Outcomes.Select(o => o.Item));
        Assert.Equal([false, true], result.Outcomes.Select(o => o.IsCorrect));
        Assert.Equal((1, 2, 0.5), (result.Correct, result.Total, result.Accuracy));
    }
}
