using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>The switches of one LoQT linear layer (and of the baselines' layers where they apply).</summary>
/// <remarks>Option names in errors are the command-line names (<c>rank</c>, <c>alpha</c>, …).</remarks>
public sealed record LoqtOptions
{
    /// <summary>Rank r of P and B; must be below min(in, out) of every targeted layer.</summary>
    public int Rank { get; init; } = 128;

    /// <summary>α, the scale of the low-rank path (the reference's <c>lora_alpha</c>; 0.5 in its pretraining runs).</summary>
    public double Alpha { get; init; } = 0.5;

    /// <summary>Keep W as NF4 (otherwise W is kept dense in <see cref="ComputeDType"/>, as the reference does).</summary>
    public bool QuantizeWeight { get; init; } = true;

    /// <summary>Keep P as NF4 (otherwise full precision).</summary>
    public bool QuantizeProjection { get; init; } = true;

    /// <summary>Error-compensation iterations k (0: B = 0 and Q = NF4(W)); the reference's scripts use 5.</summary>
    public int ErrorCompensationIterations { get; init; } = 5;

    /// <summary>How P is computed from the gradient.</summary>
    public SvdOptions Svd { get; init; } = SvdOptions.Full;

    /// <summary>NF4 block size (elements per absmax).</summary>
    public int BlockSize { get; init; } = Nf4BlockSizes.Default;

    /// <summary>Also 8-bit quantize the NF4 absmax values.</summary>
    public bool DoubleQuantization { get; init; }

    /// <summary>The dtype of activations, B, and dequantized weights in matrix products: F32, BF16 or F16.</summary>
    public ScalarType ComputeDType { get; init; } = ScalarType.Float32;

    /// <summary>Seed of the random draws (randomized SVD, LoRA's A); mixed with the layer's name and re-initialization count.</summary>
    public long Seed { get; init; }

    /// <summary>Checks the options that do not depend on a layer's shape.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the exception's parameter is the option's name.</exception>
    /// <exception cref="ArgumentException">The compute dtype is not a floating-point type LoQT supports.</exception>
    public void Validate()
    {
        if (Rank < 1)
        {
            throw new ArgumentOutOfRangeException("rank", Rank, $"rank must be at least 1; got {Rank}.");
        }

        if (!(Alpha > 0) || double.IsInfinity(Alpha))
        {
            throw new ArgumentOutOfRangeException("alpha", Alpha, $"alpha must be a finite number greater than 0; got {Alpha}.");
        }

        if (ErrorCompensationIterations < 0)
        {
            throw new ArgumentOutOfRangeException("ec-iterations", ErrorCompensationIterations, $"ec-iterations must be 0 or more; got {ErrorCompensationIterations}.");
        }

        Nf4BlockSizes.Validate(BlockSize, "block-size");
        ArgumentNullException.ThrowIfNull(Svd, "svd");
        Svd.Validate();
        if (ComputeDType is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16))
        {
            throw new ArgumentException($"dtype must be F32, BF16 or F16; got {ComputeDType}.", "dtype");
        }
    }

    /// <summary>Checks the options against one layer: also that the rank is below min(in, out).</summary>
    /// <param name="inFeatures">Columns of the layer's weight.</param>
    /// <param name="outFeatures">Rows of the layer's weight.</param>
    /// <param name="layerName">The layer, for the error message.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void ValidateFor(long inFeatures, long outFeatures, string layerName)
    {
        Validate();
        var smaller = Math.Min(inFeatures, outFeatures);
        if (Rank >= smaller)
        {
            throw new ArgumentOutOfRangeException(
                "rank",
                Rank,
                $"rank {Rank} must be smaller than min(in, out) = {smaller} of layer '{layerName}' (weight [{outFeatures}, {inFeatures}]).");
        }
    }
}
