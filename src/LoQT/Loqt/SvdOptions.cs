namespace LoQT.Loqt;

/// <summary>How the top singular vectors of a gradient are found.</summary>
public enum SvdKind
{
    /// <summary>A full (thin) SVD in fp32: the reference.</summary>
    Full,

    /// <summary>A randomized range finder (Halko, Martinsson and Tropp) with oversampling and power iterations.</summary>
    Randomized,
}

/// <summary>The SVD used to build projections from gradients.</summary>
public sealed record SvdOptions
{
    /// <summary>The reference: a full thin SVD in fp32.</summary>
    public static SvdOptions Full { get; } = new();

    /// <summary>Full or randomized.</summary>
    public SvdKind Kind { get; init; } = SvdKind.Full;

    /// <summary>Randomized only: extra random directions beyond the rank (more is more accurate).</summary>
    public int Oversampling { get; init; } = 8;

    /// <summary>Randomized only: power (subspace) iterations, each sharpening the spectrum's decay.</summary>
    public int PowerIterations { get; init; } = 2;

    /// <summary>A randomized range finder.</summary>
    /// <param name="oversampling">Extra random directions beyond the rank.</param>
    /// <param name="powerIterations">Power iterations.</param>
    public static SvdOptions Randomized(int oversampling = 8, int powerIterations = 2) =>
        new() { Kind = SvdKind.Randomized, Oversampling = oversampling, PowerIterations = powerIterations };

    /// <summary>Throws when a count is negative.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Oversampling or power iterations is negative.</exception>
    public void Validate()
    {
        if (Oversampling < 0)
        {
            throw new ArgumentOutOfRangeException("svd-oversampling", Oversampling, $"svd-oversampling must be 0 or more; got {Oversampling}.");
        }

        if (PowerIterations < 0)
        {
            throw new ArgumentOutOfRangeException("svd-power-iterations", PowerIterations, $"svd-power-iterations must be 0 or more; got {PowerIterations}.");
        }
    }
}
