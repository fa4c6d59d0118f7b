namespace LoQT.Loqt;

/// <summary>Deterministic seeds derived from a base seed, a layer name and a counter (stable across processes, unlike string hash codes).</summary>
internal static class StableSeed
{
    public static long Derive(long seed, string name, long counter)
    {
        // FNV-1a over the name, then a SplitMix64 finalizer over everything.
        var hash = 14695981039346656037UL;
        foreach (var c in name)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        var z = hash ^ (ulong)seed ^ ((ulong)counter * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (long)(z & long.MaxValue);
    }
}
