using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>What <see cref="LowRankLinearFunction"/> needs from the layer that applies it.</summary>
internal interface ILowRankLinearHost
{
    /// <summary>α, the scale of the low-rank path.</summary>
    double Alpha { get; }

    /// <summary>Frees handles of the previous custom backward's results.</summary>
    BackwardResultRelease Release { get; }

    /// <summary>Whether this backward must also produce the full weight gradient (an armed re-initialization step).</summary>
    bool CollectsFullGradient { get; }

    /// <summary>The frozen base weight W, [out, in], as a new tensor of <paramref name="dtype"/>.</summary>
    Tensor BaseWeight(ScalarType dtype);

    /// <summary>
    /// Which factor (0 left, 1 right) backward gets again from <see cref="RebuildFactor"/> instead of saving it from
    /// forward, or -1 when both are saved. For a factor that forward made (a dequantized P) rather than a parameter.
    /// </summary>
    int RebuiltFactor { get; }

    /// <summary>The factor named by <see cref="RebuiltFactor"/>, as forward used it, as a new tensor of <paramref name="dtype"/>.</summary>
    Tensor RebuildFactor(ScalarType dtype);

    /// <summary>Adds gᵀ·x (2-D, summed over rows) to the layer's full gradient.</summary>
    void AccumulateFullGradient(Tensor gradOutput, Tensor input);

    /// <summary>
    /// Hands the gradient of the left (<paramref name="index"/> 0) or right (1) factor to the update sink; returns what
    /// autograd should receive (null when the sink took it, or the factor is frozen).
    /// </summary>
    Tensor? RouteFactorGradient(int index, Tensor gradient);

    /// <summary>Called at the end of every backward of the layer (re-initializes after the last armed micro-batch).</summary>
    void AfterBackward();
}
