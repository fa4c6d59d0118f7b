using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>What <see cref="DenseLinearFunction"/> needs from the layer that applies it.</summary>
internal interface IDenseLinearHost
{
    /// <summary>Frees handles of the previous custom backward's results.</summary>
    BackwardResultRelease Release { get; }

    /// <summary>Hands the weight gradient to the update sink; returns what autograd should receive (null when taken).</summary>
    Tensor? RouteWeightGradient(Tensor gradient);
}
