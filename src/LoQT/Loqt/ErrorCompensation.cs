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
                error0 = Math.Sqrt(SquaredFrobeniusNorm(deq.neg_().add_(w)));
            }

            var zero = zeros(adapterShape, ScalarType.Float32, w.device).DetachFromDisposeScope();
            return new ErrorCompensationResult(q0, zero, error0, 0, [error0]);
        }

        var (pinv, gram) = PseudoInverse(p, side);
        var current = w;
        Nf4Tensor? bestQ = null;
        Tensor? bestB = null;
        var bestError = double.PositiveInfinity;
        var bestIteration = 0;
        var errors = new List<double>(iterations);
        for (var i = 1; i <= iterations; i++)
        {
            // Memory: besides W, one iteration holds Q, the residual and the low-rank product (3 fp32 matrices and two
            // NF4 codes with the best Q): W_cur is freed once quantized, and W − α·B·P is formed in the buffer of the
            // product (x + (−y) is exactly x − y).
            using var step = NewDisposeScope();
            var q = Nf4Tensor.Quantize(current, blockSize, doubleQuant);
            if (!ReferenceEquals(current, w))
            {
                current.Dispose();
            }

            var residual = q.Dequantize(ScalarType.Float32).neg_().add_(w);
            var b = (side == ProjectionSide.Left ? residual.matmul(pinv) : pinv.matmul(residual)).div_(alpha);
            var error = ResidualAfterProjection(residual, b, gram, side, alpha);
            errors.Add(error);

            // The last iteration's W_cur would never be quantized, so its product is never formed.
            if (i < iterations)
            {
                var lowRank = (side == ProjectionSide.Left ? b.matmul(p) : p.matmul(b)).mul_(alpha);
                current = lowRank.neg_().add_(w).MoveToOuterDisposeScope();
            }
            else
            {
                current = w;
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

    /// <summary>
    /// P⁺ for a P of full rank r: Pᵀ(PPᵀ)⁻¹ (left, r × in) or (PᵀP)⁻¹Pᵀ (right, out × r) through a Cholesky factor of the
    /// r × r Gram matrix, which is near the identity for a (quantized) orthonormal P. That agrees with the SVD-based
    /// pseudo-inverse to float rounding (7e-7 for 1024 × 4096) in a tenth of the time; a P that is not of full rank
    /// takes the SVD route. Also returns the Gram matrix (PPᵀ left, PᵀP right) for <see cref="ResidualAfterProjection"/>.
    /// </summary>
    private static (Tensor PseudoInverse, Tensor Gram) PseudoInverse(Tensor p, ProjectionSide side)
    {
        using var scope = NewDisposeScope();
        var rows = side == ProjectionSide.Left ? p : p.t(); // r × n either way
        var gram = rows.matmul(rows.t());
        var (factor, info) = linalg.cholesky_ex(gram);
        var pinv = info.item<int>() != 0 ? linalg.pinv(p)
            : side == ProjectionSide.Left ? cholesky_solve(rows, factor).t() : cholesky_solve(rows, factor);
        return (pinv.MoveToOuterDisposeScope(), gram.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// ‖R − α·P-product(B)‖_F for B = R·P⁺/α (left) or P⁺·R/α (right), without forming the out × in product: α·P-product(B)
    /// is R's orthogonal projection onto P's row (left) or column (right) space, so by Pythagoras the squared error is
    /// ‖R‖² − α²‖P-product(B)‖², and ‖B·P‖² = Σ B ∘ (B·PPᵀ), ‖P·B‖² = Σ B ∘ (PᵀP·B): r × r work in place of r × in. The
    /// subtraction loses nothing here, the projection holds about r / in of R's energy.
    /// </summary>
    private static double ResidualAfterProjection(Tensor residual, Tensor b, Tensor gram, ProjectionSide side, double alpha)
    {
        using var scope = NewDisposeScope();
        var total = SquaredFrobeniusNorm(residual);
        var weighted = side == ProjectionSide.Left ? b.matmul(gram) : gram.matmul(b);
        var projected = alpha * alpha * weighted.mul_(b).sum(ScalarType.Float64).item<double>();
        return Math.Sqrt(Math.Max(0, total - projected));
    }

    // Elements of a row slice in which ‖a‖²_F is summed, so that an fp64 copy never exists for a whole matrix
    // (8 bytes per element: 360 MB for one 7b MLP weight).
    private const long NormSliceElements = 1L << 21;

    /// <summary>‖a‖²_F in fp64, over row slices of at most <see cref="NormSliceElements"/> elements (one slice for small matrices).</summary>
    private static double SquaredFrobeniusNorm(Tensor a)
    {
        using var scope = NewDisposeScope();
        var rows = a.shape[0];
        var rowsPerSlice = Math.Max(1, NormSliceElements / Math.Max(1, a.numel() / Math.Max(1, rows)));
        var sumOfSquares = 0.0;
        for (long start = 0; start < rows; start += rowsPerSlice)
        {
            using var slice = NewDisposeScope();
            var count = Math.Min(rowsPerSlice, rows - start);
            sumOfSquares += a.narrow(0, start, count).to(ScalarType.Float64).square().sum().item<double>();
        }

        return sumOfSquares;
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
