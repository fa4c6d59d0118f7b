using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>Gradient-norm clipping with PyTorch's <c>clip_grad_norm_</c> semantics.</summary>
public static class GradientClipping
{
    /// <summary>The 2-norm of all the gradients together (computed in fp32).</summary>
    /// <param name="gradients">The gradients.</param>
    public static double TotalNorm(IReadOnlyList<Tensor> gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        if (gradients.Count == 0)
        {
            return 0;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var norms = stack(gradients.Select(g => g.to(ScalarType.Float32).norm().to(CPU)).ToArray());
        return norms.norm().item<float>();
    }

    /// <summary>
    /// Scales the gradients in place by max/(norm + 1e-6) when that is below 1, where norm is their total 2-norm.
    /// </summary>
    /// <param name="gradients">The gradients (modified).</param>
    /// <param name="maxNorm">The threshold (positive).</param>
    /// <returns>The total norm before clipping.</returns>
    public static double ClipInPlace(IReadOnlyList<Tensor> gradients, double maxNorm)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxNorm);
        var total = TotalNorm(gradients);
        var coefficient = maxNorm / (total + 1e-6);
        if (coefficient < 1)
        {
            using var noGrad = no_grad();
            foreach (var g in gradients)
            {
                g.mul_(coefficient);
            }
        }

        return total;
    }
}
