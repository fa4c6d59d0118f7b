using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>Autoregressive text continuation with a <see cref="LlamaForCausalLM"/>, one token at a time.</summary>
/// <param name="model">The model (not owned).</param>
public sealed class LlamaGenerator(LlamaForCausalLM model)
{
    /// <summary>
    /// Continues <paramref name="promptIds"/>, yielding each new token as soon as it is chosen. Stops after
    /// <see cref="GenerationOptions.MaxNewTokens"/> tokens or before a stop token (which is not yielded).
    /// </summary>
    /// <param name="promptIds">The prompt's token ids (BOS included if the model expects it); at least one.</param>
    /// <param name="options">Sampling, length and cache options.</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    public IEnumerable<int> Generate(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(options);
        if (promptIds.Count == 0)
        {
            throw new ArgumentException("the prompt has no tokens", nameof(promptIds));
        }

        options.Validate();
        return Run(promptIds, options, cancellationToken);
    }

    private IEnumerable<int> Run(IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken)
    {
        var stop = new HashSet<int>(options.StopTokenIds ?? model.Config.EosTokenIds);
        var sampler = new TokenSampler(options);
        var sequence = promptIds.Select(id => (long)id).ToList();
        using var cache = options.UseCache ? model.CreateCache() : null;
        var pending = sequence.ToArray();
        for (var step = 0; step < options.MaxNewTokens; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var next = NextToken(cache is null ? [.. sequence] : pending, cache, sampler);
            if (stop.Contains(next))
            {
                yield break;
            }

            sequence.Add(next);
            pending = [next];
            yield return next;
        }
    }

    private int NextToken(long[] ids, LlamaKvCache? cache, TokenSampler sampler)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = torch.tensor(ids, [1, ids.Length]);
        using var output = model.Forward(input, cache: cache, logitsToKeep: 1);
        var logits = output.Logits[0, -1].to(ScalarType.Float32, CPU).data<float>().ToArray();
        return sampler.Next(logits);
    }
}
