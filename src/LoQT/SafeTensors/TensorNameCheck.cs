namespace LoQT.SafeTensors;

/// <summary>Argument checks shared by the writers.</summary>
internal static class TensorNameCheck
{
    /// <summary>Rejects empty and reserved names and names already in <paramref name="used"/>.</summary>
    public static void EnsureNew(HashSet<string> used, string name, string target)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == SafeTensorsHeader.MetadataKey)
        {
            throw new ArgumentException($"'{SafeTensorsHeader.MetadataKey}' is reserved for metadata and cannot name a tensor (writing {target})", nameof(name));
        }

        if (used.Contains(name))
        {
            throw new ArgumentException($"tensor '{name}' was already added to {target}", nameof(name));
        }
    }

    /// <summary>The byte count of a tensor of <paramref name="dtype"/> and <paramref name="shape"/>, rejecting negative dimensions.</summary>
    public static long ByteLength(string name, SafeTensorDType dtype, ReadOnlySpan<long> shape)
    {
        long elements = 1;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape.ToArray())}] has a negative dimension", nameof(shape));
            }

            elements = checked(elements * dim);
        }

        return checked(elements * dtype.ElementSize());
    }
}
