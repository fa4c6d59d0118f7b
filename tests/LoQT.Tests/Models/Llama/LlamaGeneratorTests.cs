using LoQT.Models.Llama;
using LoQT.Tests.Support;
using static TorchSharp.torch;

namespace LoQT.Tests.Models.Llama;

/// <summary><see cref="LlamaGenerator"/> and <see cref="TokenSampler"/>: greedy, sampling, top-p, seeds, stop tokens, cache.</summary>
public sealed class LlamaGeneratorTests : IDisposable
{
    private static readonly int[] Prompt = [1, 45, 300, 17];

    private readonly LlamaForCausalLM model = LlamaForCausalLM.Load(TestPaths.Fixture("tiny-llama"));

    public void Dispose() => model.Dispose();

    [Fact]
    public void Greedy_EachTokenIsTheArgmaxOfAFullForwardOverEverythingSoFar()
    {
        var generated = Generate(new GenerationOptions { MaxNewTokens = 10, StopTokenIds = [] });

        var sequence = Prompt.Select(i => (long)i).ToList();
        using var _ = no_grad();
        foreach (var token in generated)
        {
            using var ids = tensor(sequence.ToArray(), [1, sequence.Count]);
            using var output = model.Forward(ids);
            using var last = output.Logits[0, -1];
            Assert.Equal(last.argmax().item<long>(), token);
            sequence.Add(token);
        }

        Assert.Equal(10, generated.Count);
    }

    [Fact]
    public void Greedy_IsDeterministic_AndTheSameWithoutTheCache()
    {
        var options = new GenerationOptions { MaxNewTokens = 16, StopTokenIds = [] };

        var first = Generate(options);
        var second = Generate(options);
        var uncached = Generate(options with { UseCache = false });

        Assert.Equal(first, second);
        Assert.Equal(first, uncached);
    }

    [Fact]
    public void Sampling_SameSeedGivesTheSameTokens_AnotherSeedOthers()
    {
        var options = new GenerationOptions { MaxNewTokens = 24, Temperature = 1.0, Seed = 11, StopTokenIds = [] };

        var a = Generate(options);
        var b = Generate(options);
        var c = Generate(options with { Seed = 12 });

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual(Generate(options with { Temperature = 0 }), a);
    }

    [Fact]
    public void TopP_SmallerThanTheTopTokensProbability_IsGreedy()
    {
        var greedy = Generate(new GenerationOptions { MaxNewTokens = 12, StopTokenIds = [] });
        var nucleusOfOne = Generate(new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopP = 1e-6, Seed = 5, StopTokenIds = [] });

        Assert.Equal(greedy, nucleusOfOne);
    }

    [Fact]
    public void StopToken_EndsGenerationAndIsNotReturned()
    {
        var greedy = Generate(new GenerationOptions { MaxNewTokens = 8, StopTokenIds = [] });
        var stopAt = greedy[3];

        var stopped = Generate(new GenerationOptions { MaxNewTokens = 8, StopTokenIds = [stopAt] });

        Assert.Equal(greedy.TakeWhile(t => t != stopAt), stopped);
        Assert.DoesNotContain(stopAt, stopped);
    }

    [Fact]
    public void Generate_YieldsEachTokenBeforeComputingTheNext()
    {
        // Streaming: after the first token is taken, cancelling stops generation before the second is computed.
        using var cancel = new CancellationTokenSource();
        var taken = new List<int>();
        var run = new LlamaGenerator(model).Generate(Prompt, new GenerationOptions { MaxNewTokens = 50, StopTokenIds = [] }, cancel.Token);

        Assert.Throws<OperationCanceledException>(() =>
        {
            foreach (var token in run)
            {
                taken.Add(token);
                cancel.Cancel();
            }
        });

        Assert.Single(taken);
    }

    [Fact]
    public void Options_OutOfRange_AreRejectedNamingTheOption()
    {
        var generator = new LlamaGenerator(model);

        Assert.Equal("Temperature", Assert.Throws<ArgumentOutOfRangeException>(() => generator.Generate(Prompt, new GenerationOptions { Temperature = -1 })).ParamName);
        Assert.Equal("TopP", Assert.Throws<ArgumentOutOfRangeException>(() => generator.Generate(Prompt, new GenerationOptions { TopP = 0 })).ParamName);
        Assert.Equal("TopP", Assert.Throws<ArgumentOutOfRangeException>(() => generator.Generate(Prompt, new GenerationOptions { TopP = 1.5 })).ParamName);
        Assert.Throws<ArgumentException>(() => generator.Generate([], new GenerationOptions()));
    }

    [Fact]
    public void Sampler_TopP_DrawsOnlyFromTheNucleus_InProportionToItsProbabilities()
    {
        // softmax([3, 2, 1, 0]) = 0.644, 0.237, 0.087, 0.032: top-p 0.7 keeps the first two (0.881 in all), as
        // transformers' TopPLogitsWarper does (it drops tokens whose ascending cumulative probability is <= 1 - p).
        float[] logits = [1f, 3f, 0f, 2f];
        var sampler = new TokenSampler(new GenerationOptions { Temperature = 1.0, TopP = 0.7, Seed = 1 });
        var counts = new int[4];
        const int draws = 4000;
        for (var i = 0; i < draws; i++)
        {
            counts[sampler.Next(logits)]++;
        }

        Assert.Equal(0, counts[0] + counts[2]);
        var share = (double)counts[1] / draws;
        var expected = Math.Exp(3) / (Math.Exp(3) + Math.Exp(2));
        // Binomial standard deviation over 4000 draws is 0.007; 0.03 is over 4 of them.
        Assert.InRange(share, expected - 0.03, expected + 0.03);
    }

    [Fact]
    public void Sampler_Temperature_SharpensOrFlattensTheDistribution()
    {
        float[] logits = [0f, 1f];
        double Share(double temperature)
        {
            var sampler = new TokenSampler(new GenerationOptions { Temperature = temperature, Seed = 2 });
            return Enumerable.Range(0, 4000).Count(_ => sampler.Next(logits) == 1) / 4000.0;
        }

        // p(1) = sigmoid(1 / T): 0.731 at T = 1, 0.881 at T = 0.5, 0.622 at T = 2 (± 0.03 as above).
        Assert.InRange(Share(1.0), 0.70, 0.76);
        Assert.InRange(Share(0.5), 0.85, 0.91);
        Assert.InRange(Share(2.0), 0.59, 0.65);
    }

    [Fact]
    public void Sampler_Greedy_TakesTheFirstOfEqualMaxima()
    {
        var sampler = new TokenSampler(new GenerationOptions { Temperature = 0 });

        Assert.Equal(1, sampler.Next([0f, 5f, 5f, -1f]));
    }

    private List<int> Generate(GenerationOptions options) => new LlamaGenerator(model).Generate(Prompt, options).ToList();
}
