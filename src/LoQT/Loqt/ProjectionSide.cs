namespace LoQT.Loqt;

/// <summary>Which factor of the low-rank path is the frozen projection P (the reference's <c>proj_type</c>).</summary>
public enum ProjectionSide
{
    /// <summary>P is r × in (top right singular vectors of the gradient, as rows), B is out × r: y += α·(x·Pᵀ)·Bᵀ.</summary>
    Left,

    /// <summary>P is out × r (top left singular vectors of the gradient), B is r × in: y += α·x·(P·B)ᵀ.</summary>
    Right,
}

/// <summary>The reference's <c>proj_type="std"</c> rule.</summary>
public static class ProjectionSides
{
    /// <summary>
    /// <see cref="ProjectionSide.Left"/> when <paramref name="inFeatures"/> ≤ <paramref name="outFeatures"/>, else
    /// <see cref="ProjectionSide.Right"/>: the smaller side of the weight is always the projected one, so B is the larger factor.
    /// </summary>
    /// <param name="inFeatures">Columns of the weight.</param>
    /// <param name="outFeatures">Rows of the weight.</param>
    public static ProjectionSide For(long inFeatures, long outFeatures) =>
        inFeatures <= outFeatures ? ProjectionSide.Left : ProjectionSide.Right;

    /// <summary>The shape of P for a weight of shape [out, in] and rank r.</summary>
    /// <param name="side">The side.</param>
    /// <param name="inFeatures">Columns of the weight.</param>
    /// <param name="outFeatures">Rows of the weight.</param>
    /// <param name="rank">The rank r.</param>
    public static long[] ProjectionShape(this ProjectionSide side, long inFeatures, long outFeatures, int rank) =>
        side == ProjectionSide.Left ? [rank, inFeatures] : [outFeatures, rank];

    /// <summary>The shape of B for a weight of shape [out, in] and rank r.</summary>
    /// <param name="side">The side.</param>
    /// <param name="inFeatures">Columns of the weight.</param>
    /// <param name="outFeatures">Rows of the weight.</param>
    /// <param name="rank">The rank r.</param>
    public static long[] AdapterShape(this ProjectionSide side, long inFeatures, long outFeatures, int rank) =>
        side == ProjectionSide.Left ? [outFeatures, rank] : [rank, inFeatures];
}
