using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// AdamW with blockwise 8-bit moments, as bitsandbytes' <c>AdamW8bit</c> (blockwise, non-paged): the first moment
/// with the signed dynamic map, the second with the unsigned one, blocks of 256 with an fp32 absmax each; the update
/// arithmetic is bitsandbytes' fp32 kernel. Parameters smaller than <see cref="MinQuantizedSize"/> keep fp32 moments
/// (bitsandbytes' <c>min_8bit_size</c>).
/// </summary>
public sealed class AdamW8Bit : AdamWOptimizer
{
    /// <summary>Elements per quantization block of the moments.</summary>
    public const int BlockSize = 256;

    /// <summary>Parameters with fewer elements keep fp32 moments (bitsandbytes' default <c>min_8bit_size</c>).</summary>
    public const int DefaultMinQuantizedSize = 4096;

    /// <summary>Creates the optimizer.</summary>
    /// <param name="parameters">Named parameters.</param>
    /// <param name="options">Hyper-parameters (PyTorch defaults when null).</param>
    /// <param name="minQuantizedSize">Smallest parameter (or GaLore projected gradient) whose moments are 8-bit.</param>
    public AdamW8Bit(IEnumerable<TrainableParameter> parameters, AdamWOptions? options = null, int minQuantizedSize = DefaultMinQuantizedSize)
        : base(parameters, options ?? new AdamWOptions())
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minQuantizedSize);
        MinQuantizedSize = minQuantizedSize;
    }

    /// <summary>Smallest element count with 8-bit moments.</summary>
    public int MinQuantizedSize { get; }

    private protected override AdamMoments CreateMoments(long[] shape, Device device) =>
        shape.Aggregate(1L, (a, b) => a * b) < MinQuantizedSize
            ? new Fp32AdamMoments(shape, device)
            : new BlockwiseQuantizedAdamMoments(shape, device, BlockSize);
}
