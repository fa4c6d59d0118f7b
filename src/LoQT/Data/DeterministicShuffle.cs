namespace LoQT.Data;

/// <summary>
/// Reproducible permutations from (seed, epoch), the same on every machine and .NET version (System.Random's
/// sequence is not a documented contract): Fisher–Yates driven by SplitMix64.
/// </summary>
internal static class DeterministicShuffle
{
    public static int[] Permutation(int count, ulong seed, int epoch)
    {
        var order = new int[count];
        for (var i = 0; i < count; i++)
        {
            order[i] = i;
        }

        var state = seed ^ (0x9E3779B97F4A7C15UL * (ulong)(epoch + 1));
        for (var i = count - 1; i > 0; i--)
        {
            // Multiply-high maps a 64-bit draw onto [0, i]; its bias is below 2^-32 for any dataset size.
            var j = (int)Math.BigMul(Next(ref state), (ulong)(i + 1), out _);
            (order[i], order[j]) = (order[j], order[i]);
        }

        return order;
    }

    private static ulong Next(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
