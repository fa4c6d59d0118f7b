using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// The output head and the next-token cross-entropy in one pass over row chunks: loss = CE(h·Wᵀ, targets) without
/// ever holding the full <c>[rows, vocab]</c> logits.
/// </summary>
/// <remarks>
/// <para>
/// With a 32k vocabulary the head and its loss are most of a small model's step: the logits, their fp32 copy, the
/// log-softmax, its gradient and the gradient of the copy are each a tensor of rows × vocab (256 MiB for 2048 tokens in
/// fp32), written and read from memory several times. Here each chunk of rows (about 4M logits, 16 MiB) is multiplied,
/// reduced to its log-sum-exp and turned into its gradient (softmax − one-hot) while it is in cache, and the gradients of
/// h and W are accumulated right away, in the forward pass; backward only scales them by the incoming gradient. That
/// removes the big tensors (peak memory) and most of the elementwise traffic (time), with the same numbers as the
/// unfused computation up to summation order: the softmax is fp32, as transformers' upcast of the logits makes it, and
/// W's gradient accumulates in fp32 from the fp32 softmax (transformers rounds it to the compute dtype first).
/// </para>
/// <para>
/// On the CPU the matmuls run in fp32 even for bf16/fp16 h and W (from one fp32 copy of W per call): libtorch's bf16
/// GEMM (oneDNN's avx512_core_bf16 brgemm, without AMX) measured 1.1–2× slower than its fp32 GEMM for every shape of
/// these models, 1024² included, so the upcast is both faster and more accurate there. Other devices multiply in h's
/// dtype, as transformers does.
/// </para>
/// <para>The gradients are computed only when h or W requires them (not under no_grad, as in evaluation).</para>
/// </remarks>
public static class LinearCrossEntropy
{
    /// <summary>Logits per chunk: 4M (16 MiB in fp32), which measured fastest on a 2-core CPU at vocabulary 32000.</summary>
    private const long ChunkElements = 1L << 22;

    /// <summary>
    /// Cross-entropy of the logits <paramref name="hidden"/>·<paramref name="weight"/>ᵀ against
    /// <paramref name="targets"/>, skipping targets equal to <paramref name="ignoreIndex"/>.
    /// </summary>
    /// <param name="hidden">h, <c>[rows, in]</c>.</param>
    /// <param name="weight">W, <c>[vocab, in]</c>, in h's dtype (a parameter to train, or frozen).</param>
    /// <param name="targets"><c>[rows]</c> class indices (int64).</param>
    /// <param name="reduction">Mean over the scored rows (transformers' loss) or their sum.</param>
    /// <param name="routeWeightGradient">Where W's gradient goes (see <see cref="IDenseWeightLinear.RouteWeightGradient"/>); null: to autograd.</param>
    /// <param name="ignoreIndex">The target that takes no loss.</param>
    /// <returns>A fp32 scalar; NaN for a mean over no scored rows, as PyTorch's.</returns>
    /// <exception cref="ArgumentException">The shapes or dtypes do not fit together.</exception>
    public static Tensor Apply(
        Tensor hidden,
        Tensor weight,
        Tensor targets,
        nn.Reduction reduction = nn.Reduction.Mean,
        Func<Tensor, Tensor?>? routeWeightGradient = null,
        long ignoreIndex = -100)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(targets);
        if (hidden.dim() != 2 || weight.dim() != 2 || targets.dim() != 1 || hidden.shape[1] != weight.shape[1] || targets.shape[0] != hidden.shape[0])
        {
            throw new ArgumentException(
                $"LinearCrossEntropy needs h [rows, in], W [vocab, in] and targets [rows]; got h [{string.Join(", ", hidden.shape)}], W [{string.Join(", ", weight.shape)}], targets [{string.Join(", ", targets.shape)}].");
        }

        if (hidden.dtype != weight.dtype)
        {
            throw new ArgumentException($"LinearCrossEntropy needs h and W of one dtype; got {hidden.dtype} and {weight.dtype}.", nameof(weight));
        }

        if (reduction is not (nn.Reduction.Mean or nn.Reduction.Sum))
        {
            throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "LinearCrossEntropy reduces by mean or sum.");
        }

        return LinearCrossEntropyFunction.apply(hidden, weight, targets, new LinearCrossEntropySettings(reduction, routeWeightGradient, ignoreIndex));
    }

    internal static long ChunkRows(long vocabulary) => Math.Max(1, ChunkElements / Math.Max(1, vocabulary));

    /// <summary>
    /// The dtype the head's products run in for h of <paramref name="hiddenDtype"/> on a <paramref name="device"/>: fp32
    /// on the CPU (see the remarks), h's dtype elsewhere. When it differs from h's, each call holds one copy of W in it;
    /// the memory planner counts that copy from this rule.
    /// </summary>
    internal static ScalarType ProductDtype(DeviceType device, ScalarType hiddenDtype) =>
        device == DeviceType.CPU ? ScalarType.Float32 : hiddenDtype;
}

/// <summary>The non-tensor arguments of <see cref="LinearCrossEntropyFunction"/>.</summary>
internal sealed record LinearCrossEntropySettings(nn.Reduction Reduction, Func<Tensor, Tensor?>? RouteWeightGradient, long IgnoreIndex);

/// <summary>Forward computes the loss and, when needed, both gradients; backward scales them.</summary>
internal sealed class LinearCrossEntropyFunction : autograd.SingleTensorFunction<LinearCrossEntropyFunction>
{
    private const string SettingsKey = "settings";
    private const string GradientsKey = "gradients";

    /// <inheritdoc/>
    public override string Name => nameof(LinearCrossEntropyFunction);

    /// <inheritdoc/>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var h = (Tensor)vars[0];
        var w = (Tensor)vars[1];
        var targets = (Tensor)vars[2];
        var settings = (LinearCrossEntropySettings)vars[3];
        var needH = h.requires_grad;
        var needW = w.requires_grad;

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rows = h.shape[0];
        var scored = targets.ne(settings.IgnoreIndex).sum().item<long>();
        var scale = settings.Reduction == nn.Reduction.Mean ? 1.0 / scored : 1.0;
        var total = zeros(1, ScalarType.Float64, h.device);
        var gradH = needH ? empty_like(h) : null;
        var gradW = needW ? zeros(w.shape, ScalarType.Float32, w.device) : null;
        var chunk = LinearCrossEntropy.ChunkRows(w.shape[0]);
        var compute = LinearCrossEntropy.ProductDtype(h.device.type, h.dtype);
        var wc = w.to(compute);
        for (long start = 0; start < rows; start += chunk)
        {
            using var chunkScope = NewDisposeScope();
            var length = Math.Min(chunk, rows - start);
            var hc = h.narrow(0, start, length).to(compute);
            var logits = hc.matmul(wc.t()).to(ScalarType.Float32);
            var lse = logits.logsumexp(1, keepdim: true);
            var tc = targets.narrow(0, start, length);
            var valid = tc.ne(settings.IgnoreIndex);
            var index = where(valid, tc, zeros_like(tc)).unsqueeze(1);
            var weightOf = valid.to(ScalarType.Float32).unsqueeze(1);
            total.add_((lse - logits.gather(1, index)).mul_(weightOf).sum().to(ScalarType.Float64));
            if (gradH is null && gradW is null)
            {
                continue;
            }

            // ∂loss/∂logits = (softmax − one-hot)·scale on scored rows, 0 on ignored ones; in place over the logits.
            var p = logits.sub_(lse).exp_();
            p.scatter_add_(1, index, weightOf.neg());
            p.mul_(weightOf.mul(scale));
            if (gradH is not null)
            {
                gradH.narrow(0, start, length).copy_(p.to(compute).matmul(wc));
            }

            gradW?.addmm_(p.t(), hc.to(ScalarType.Float32));
        }

        var loss = (settings.Reduction == nn.Reduction.Mean ? total / scored : total).to(ScalarType.Float32).squeeze();
        // Held by a managed object, not save_for_backward: these are results, not inputs, and backward disposes them
        // (saved variables would leave their managed handles, and so their memory, alive until a GC).
        ctx.save_data(SettingsKey, settings);
        ctx.save_data(GradientsKey, new PrecomputedGradients(gradH?.DetachFromDisposeScope(), gradW?.to(w.dtype).DetachFromDisposeScope()));
        return loss.MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var settings = (LinearCrossEntropySettings)ctx.get_data(SettingsKey);
        using var saved = (PrecomputedGradients)ctx.get_data(GradientsKey);
        var gradH = saved.Hidden?.mul(grad_output.to(saved.Hidden.dtype));
        var gradW = saved.Weight?.mul(grad_output.to(saved.Weight.dtype));
        if (gradW is not null && settings.RouteWeightGradient is { } route)
        {
            var routed = route(gradW);
            if (!ReferenceEquals(routed, gradW))
            {
                gradW.Dispose();
            }

            gradW = routed;
        }

        grad_output.Dispose();
        return [gradH!, gradW!, null!, null!];
    }
}

/// <summary>The gradients of h and W per unit of incoming gradient, from forward to backward (disposed by backward).</summary>
internal sealed class PrecomputedGradients(Tensor? hidden, Tensor? weight) : IDisposable
{
    public Tensor? Hidden { get; } = hidden;

    public Tensor? Weight { get; } = weight;

    public void Dispose()
    {
        Hidden?.Dispose();
        Weight?.Dispose();
    }
}
