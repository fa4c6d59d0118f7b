using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// An optimizer's state as named tensors and scalars, for checkpoints: per parameter
/// <c>{name}.exp_avg</c> / <c>{name}.exp_avg_sq</c> (fp32), or for 8-bit states <c>{name}.exp_avg.codes</c>,
/// <c>{name}.exp_avg.absmax</c>, <c>{name}.exp_avg_sq.codes</c>, <c>{name}.exp_avg_sq.absmax</c>; with GaLore
/// <c>{name}.galore_projection</c>; scalars <c>{name}.step</c>, and <c>step_count</c>, <c>learning_rate</c>.
/// </summary>
/// <remarks>The tensors of an exported state are copies (on the optimizer's devices) owned by this object.</remarks>
public sealed class OptimizerState : IDisposable
{
    /// <summary>Named tensors.</summary>
    public Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);

    /// <summary>Named scalars (counts are exact up to 2^53).</summary>
    public Dictionary<string, double> Scalars { get; } = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in Tensors.Values)
        {
            t.Dispose();
        }

        Tensors.Clear();
    }
}
