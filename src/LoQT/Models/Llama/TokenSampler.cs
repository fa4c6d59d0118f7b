namespace LoQT.Models.Llama;

/// <summary>
/// Picks the next token from logits as transformers' sampling does: divide by the temperature, keep the smallest set
/// of most likely tokens whose probability reaches top-p (at least one), sample from their renormalised softmax.
/// Temperature 0 is greedy (the first of equal maxima).
/// </summary>
internal sealed class TokenSampler(GenerationOptions options)
{
    private readonly Random _random = new(options.Seed);

    public int Next(ReadOnlySpan<float> logits)
    {
        if (options.Temperature == 0)
        {
            return ArgMax(logits);
        }

        var count = logits.Length;
        var scaled = new double[count];
        var max = double.NegativeInfinity;
        for (var i = 0; i < count; i++)
        {
            scaled[i] = logits[i] / options.Temperature;
            max = Math.Max(max, scaled[i]);
        }

        double total = 0;
        for (var i = 0; i < count; i++)
        {
            scaled[i] = Math.Exp(scaled[i] - max);
            total += scaled[i];
        }

        var order = Enumerable.Range(0, count).ToArray();
        Array.Sort(order, (a, b) => scaled[b].CompareTo(scaled[a]) is var c && c != 0 ? c : a.CompareTo(b));
        var kept = 0;
        double cumulative = 0;
        while (kept < count && (kept == 0 || cumulative < options.TopP * total))
        {
            cumulative += scaled[order[kept]];
            kept++;
        }

        var draw = _random.NextDouble() * cumulative;
        for (var i = 0; i < kept; i++)
        {
            draw -= scaled[order[i]];
            if (draw < 0)
            {
                return order[i];
            }
        }

        return order[kept - 1];
    }

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }
}
