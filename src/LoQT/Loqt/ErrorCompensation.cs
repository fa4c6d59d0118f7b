using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>The outcome of <see cref="ErrorCompensation.Run"/>: the quantized weight and the B that best cancel its error.</summary>
public sealed class ErrorCompensationResult : IDisposable
{
    internal ErrorCompensationResult(Nf4Tensor weight, Tensor adapter, double error, int bestIteration, IReadOnlyList<double> iterationErrors)
    {
        Weight = weight;
        Adapter = adapter;
        Error = error;
        BestIteration = bestIteration;
        IterationErrors = iterationErrors;
    }

    /// <summary>Q, the NF4 weight of the best pair (owned: dispose this result or take it).</summary>
    public Nf4Tensor Weight { get; }

    /// <summary>B of the best pair, fp32 (owned).</summary>
    public Tensor Adapter { get; }

    /// <summary>‖W − (deq(Q) + α·P-product(B))‖_F of the best pair.</summary>
    public double Error { get; }

    /// <summary>Which iteration gave the best pair (1-based; 0 when no iterations ran).</summary>
    public int BestIteration { get; }

    /// <summary>The error after each iteration (just the k = 0 error when no iterations ran).</summary>
    public IReadOnlyList<double> IterationErrors { get; }

    /// <inheritdoc/>
    public void Dispose()
    {
        Weight.Dispose();
        Adapter.Dispose();
    }
}

/// <summary>
/// LoQT's error compensation: with W (full precision) and P fixed, choose B so that the low-rank path cancels the
/// quantization error of Q = NF4(W − α·P-product(B)).
/// </summary>
public static class ErrorCompensation
{
    /// <summary>
    /// Runs k iterations of: Q = NF4(W_cur), R = W − deq(Q), B = R·P⁺/α (left) or P⁺·R/α (right) with P⁺ the
    /// Moore–Penrose pseudo-inverse of P, W_cur = W − α·B·P (left) or W − α·P·B (right); and keeps the pair (Q, B)
    /// with the smallest ‖W − (deq(Q) + α·P-product(B))‖_F. With k = 0: Q = NF4(W), B = 0. All arithmetic is fp32.
    /// </summary>
    /// <param name="weight">W, [out, in] (any float dtype; not modified).</param>
    /// <param name="projection">P as the layer uses it (the dequantized P when P is quantized): r × in (left) or out × r (right).</param>
    /// <param name="side">Which side P is on.</param>
    /// <param name="alpha">α (positive).</param>
    /// <param name="iterations">k (0 or more).</param>
    /// <param name="blockSize">NF4 block size of Q.</param>
    /// <param name="doubleQuant">NF4 double quantization of Q.</param>
    /// <exception cref="ArgumentException">The shapes do not fit together, or α or k is out of range.</exception>
    public static ErrorCompensationResult Run(
        Tensor weight,
        Tensor projection,
        ProjectionSide side,
        double alpha,
        int iterations,
        int blockSize = Nf4BlockSizes.Default,
        bool doubleQuant = false)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(projection);
        if (!(alpha > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, $"alpha must be greater than 0; got {alpha}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(iterations);
        ValidateShapes(weight, projection, side);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var w = weight.detach().to(ScalarType.Float32);
        var p = projection.detach().to(ScalarType.Float32);
        var adapterShape = side == ProjectionSide.Left
            ? new[] { w.shape[0], p.shape[0] }
            : new[] { p.shape[1], w.shape[1] };

        if (iterations == 0)
        {
            var q0 = Nf4Tensor.Quantize(w, blockSize, doubleQuant);
            double error0;
            using (var deq = q0.Dequantize(ScalarType.Float32))
            {
                error0 = FrobeniusNorm(w - deq);
            }

            var zero = zeros(adapterShape, ScalarType.Float32, w.device).DetachFromDisposeScope();
            return new ErrorCompensationResult(q0, zero, error0, 0, [error0]);
        }

        var pinv = linalg.pinv(p);
        var current = w;
        Nf4Tensor? bestQ = null;
        Tensor? bestB = null;
        var bestError = double.PositiveInfinity;
        var bestIteration = 0;
        var errors = new List<double>(iterations);
        for (var i = 1; i <= iterations; i++)
        {
            using var step = NewDisposeScope();
            var q = Nf4Tensor.Quantize(current, blockSize, doubleQuant);
            var residual = w - q.Dequantize(ScalarType.Float32);
            var b = (side == ProjectionSide.Left ? residual.matmul(pinv) : pinv.matmul(residual)).div_(alpha);
            var lowRank = (side == ProjectionSide.Left ? b.matmul(p) : p.matmul(b)).mul_(alpha);
            var error = FrobeniusNorm(residual - lowRank);
            errors.Add(error);
            var previous = current;
            current = (w - lowRank).MoveToOuterDisposeScope();
            if (!ReferenceEquals(previous, w))
            {
                previous.Dispose();
            }

            if (error < bestError)
            {
                bestQ?.Dispose();
                bestB?.Dispose();
                bestQ = q;
                bestB = b.DetachFromDisposeScope();
                bestError = error;
                bestIteration = i;
            }
            else
            {
                q.Dispose();
            }
        }

        return new ErrorCompensationResult(bestQ!, bestB!, bestError, bestIteration, errors);
    }

    private static double FrobeniusNorm(Tensor t)
    {
        using var norm = t.to(ScalarType.Float64).norm();
        return norm.item<double>();
    }

    private static void ValidateShapes(Tensor weight, Tensor projection, ProjectionSide side)
    {
        if (weight.dim() != 2 || projection.dim() != 2)
        {
            throw new ArgumentException($"W and P must be 2-D; got W [{string.Join(", ", weight.shape)}] and P [{string.Join(", ", projection.shape)}].");
        }

        var fits = side == ProjectionSide.Left
            ? projection.shape[1] == weight.shape[1]
            : projection.shape[0] == weight.shape[0];
        if (!fits)
        {
            throw new ArgumentException($"P [{string.Join(", ", projection.shape)}] does not fit W [{string.Join(", ", weight.shape)}] on the {side.ToString().ToLowerInvariant()} side.", nameof(projection));
        }
    }
}
