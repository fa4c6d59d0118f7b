using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// Adam moments stored as blockwise 8-bit codes with bitsandbytes' semantics: the first moment with the signed dynamic
/// map, the second with the unsigned one, one fp32 absmax per block. Each update dequantizes both, applies
/// bitsandbytes' 8-bit Adam arithmetic in fp32, updates the parameter from the fp32 moments, and requantizes them with
/// fresh absmax values.
/// </summary>
internal sealed class BlockwiseQuantizedAdamMoments : AdamMoments
{
    private readonly long[] shape;
    private readonly int blockSize;
    private readonly Tensor expAvgCodes;
    private readonly Tensor expAvgAbsmax;
    private readonly Tensor expAvgSqCodes;
    private readonly Tensor expAvgSqAbsmax;

    public BlockwiseQuantizedAdamMoments(long[] shape, Device device, int blockSize)
    {
        this.shape = shape;
        this.blockSize = blockSize;
        var count = shape.Aggregate(1L, (a, b) => a * b);
        var blocks = DynamicQuantMap.BlockCount(count, blockSize);

        // All-zero codes with zero absmax dequantize to exactly 0, as bitsandbytes initializes its states.
        expAvgCodes = zeros(count, ScalarType.Byte, device).DetachFromDisposeScope();
        expAvgAbsmax = zeros(blocks, ScalarType.Float32, device).DetachFromDisposeScope();
        expAvgSqCodes = zeros(count, ScalarType.Byte, device).DetachFromDisposeScope();
        expAvgSqAbsmax = zeros(blocks, ScalarType.Float32, device).DetachFromDisposeScope();
    }

    public override long StorageBytes => expAvgCodes.numel() + expAvgSqCodes.numel() + 4 * (expAvgAbsmax.numel() + expAvgSqAbsmax.numel());

    public override void ApplySlice(Tensor param, Tensor grad, long offset, double lr, double weightDecay, AdamWOptions options)
    {
        if (offset % blockSize != 0)
        {
            throw new ArgumentException($"A slice of 8-bit Adam state must start at a block boundary (a multiple of {blockSize}); got {offset}.", nameof(offset));
        }

        using var scope = NewDisposeScope();
        var slice = new Slice(this, offset, param.numel());
        var (expAvg, expAvgSq) = UpdateMoments(slice, grad, options);

        // bitsandbytes: step_size = -lr * sqrt(1 - beta2^t) / (1 - beta1^t); p = p * (1 - lr * wd);
        // p += step_size * m / (sqrt(v) + eps * sqrt(1 - beta2^t)).
        var correction1 = 1 - Math.Pow(options.Beta1, Step);
        var correction2 = Math.Sqrt(1 - Math.Pow(options.Beta2, Step));
        if (weightDecay > 0)
        {
            param.mul_(1 - (lr * weightDecay));
        }

        var denom = expAvgSq.sqrt().add_(options.Epsilon * correction2);
        param.addcdiv_(expAvg.reshape(param.shape), denom.reshape(param.shape), -lr * correction2 / correction1);
        Store(slice, expAvg, expAvgSq);
    }

    public override Tensor Direction(Tensor grad, AdamWOptions options)
    {
        using var scope = NewDisposeScope();
        Step++;
        var whole = new Slice(this, 0, expAvgCodes.numel());
        var (expAvg, expAvgSq) = UpdateMoments(whole, grad, options);
        var correction1 = 1 - Math.Pow(options.Beta1, Step);
        var correction2 = Math.Sqrt(1 - Math.Pow(options.Beta2, Step));
        var direction = expAvg.div(expAvgSq.sqrt().add_(options.Epsilon * correction2)).mul_(correction2 / correction1);
        Store(whole, expAvg, expAvgSq);
        return direction.reshape(shape).MoveToOuterDisposeScope();
    }

    public override void Export(string prefix, OptimizerState state)
    {
        state.Tensors[prefix + ".exp_avg.codes"] = expAvgCodes.clone();
        state.Tensors[prefix + ".exp_avg.absmax"] = expAvgAbsmax.clone();
        state.Tensors[prefix + ".exp_avg_sq.codes"] = expAvgSqCodes.clone();
        state.Tensors[prefix + ".exp_avg_sq.absmax"] = expAvgSqAbsmax.clone();
        state.Scalars[prefix + ".step"] = Step;
    }

    public override void Import(string prefix, OptimizerState state)
    {
        CopyChecked(state, prefix + ".exp_avg.codes", expAvgCodes);
        CopyChecked(state, prefix + ".exp_avg.absmax", expAvgAbsmax);
        CopyChecked(state, prefix + ".exp_avg_sq.codes", expAvgSqCodes);
        CopyChecked(state, prefix + ".exp_avg_sq.absmax", expAvgSqAbsmax);
        Step = ReadStep(state, prefix);
    }

    public override void Dispose()
    {
        expAvgCodes.Dispose();
        expAvgAbsmax.Dispose();
        expAvgSqCodes.Dispose();
        expAvgSqAbsmax.Dispose();
    }

    // bitsandbytes: s1 = s1 * beta1 + (1 - beta1) * g; s2 = s2 * beta2 + (1 - beta2) * g * g, in fp32.
    private static (Tensor ExpAvg, Tensor ExpAvgSq) UpdateMoments(Slice slice, Tensor grad, AdamWOptions options)
    {
        var g = grad.reshape(-1);
        var expAvg = Blockwise8.Dequantize(slice.ExpAvgCodes, slice.ExpAvgAbsmax, DynamicQuantMap.SignedValues, slice.BlockSize);
        var expAvgSq = Blockwise8.Dequantize(slice.ExpAvgSqCodes, slice.ExpAvgSqAbsmax, DynamicQuantMap.UnsignedValues, slice.BlockSize);
        expAvg.mul_(options.Beta1).add_(g, 1 - options.Beta1);
        expAvgSq.mul_(options.Beta2).addcmul_(g, g, 1 - options.Beta2);
        return (expAvg, expAvgSq);
    }

    private static void Store(Slice slice, Tensor expAvg, Tensor expAvgSq)
    {
        Blockwise8.Quantize(expAvg, DynamicQuantMap.SignedValues, slice.ExpAvgCodes, slice.ExpAvgAbsmax, slice.BlockSize);
        Blockwise8.Quantize(expAvgSq, DynamicQuantMap.UnsignedValues, slice.ExpAvgSqCodes, slice.ExpAvgSqAbsmax, slice.BlockSize);
    }

    /// <summary>Views of the codes and absmax of elements [offset, offset + count), offset at a block boundary (disposed with the caller's scope).</summary>
    private readonly struct Slice
    {
        public Slice(BlockwiseQuantizedAdamMoments moments, long offset, long count)
        {
            BlockSize = moments.blockSize;
            var firstBlock = offset / BlockSize;
            var blocks = DynamicQuantMap.BlockCount(count, BlockSize);
            ExpAvgCodes = moments.expAvgCodes.narrow(0, offset, count);
            ExpAvgSqCodes = moments.expAvgSqCodes.narrow(0, offset, count);
            ExpAvgAbsmax = moments.expAvgAbsmax.narrow(0, firstBlock, blocks);
            ExpAvgSqAbsmax = moments.expAvgSqAbsmax.narrow(0, firstBlock, blocks);
        }

        public int BlockSize { get; }

        public Tensor ExpAvgCodes { get; }

        public Tensor ExpAvgAbsmax { get; }

        public Tensor ExpAvgSqCodes { get; }

        public Tensor ExpAvgSqAbsmax { get; }
    }
}
