using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Quantization;

/// <summary>
/// NF4 and blockwise 8-bit quantization written with torch ops, so they run on whatever device the tensors are on.
/// Same semantics as <see cref="Nf4Cpu"/> and <see cref="DynamicQuantMap"/> (bitsandbytes' reference kernels).
/// </summary>
internal static class Nf4TorchOps
{
    /// <summary>NF4-quantizes a tensor of any float dtype: packed U8 [ceil(n/2), 1] and F32 absmax [blocks].</summary>
    public static (Tensor Packed, Tensor Absmax) Quantize4Bit(Tensor x, int blockSize)
    {
        using var scope = NewDisposeScope();
        using var flat = x.reshape(-1).to(ScalarType.Float32);
        var (scaled, absmax) = ScaleBlockwise(flat, blockSize);
        if (scaled.numel() % 2 == 1)
        {
            // bitsandbytes pads the scaled values, so the pad is the code of 0.0.
            scaled = cat([scaled, zeros(1, ScalarType.Float32, scaled.device)]);
        }

        using var midpoints = tensor(Nf4Codebook.Midpoints.ToArray(), device: x.device);
        var index = bucketize(scaled, midpoints, outInt32: true);
        var pairs = scaled.numel() / 2;
        var high = index.slice(0, 0, 2 * pairs, 2);
        var low = index.slice(0, 1, 2 * pairs, 2);
        var packed = high.mul(16).add(low).to(ScalarType.Byte).unsqueeze(1);
        return (packed.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>Blockwise 8-bit quantization with a 256-entry ascending map: U8 codes (same length) and F32 absmax.</summary>
    public static (Tensor Codes, Tensor Absmax) QuantizeBlockwise8(Tensor x, ReadOnlySpan<float> map, int blockSize)
    {
        using var scope = NewDisposeScope();
        using var flat = x.reshape(-1).to(ScalarType.Float32);
        var (scaled, absmax) = ScaleBlockwise(flat, blockSize);
        using var midpoints = tensor(DynamicQuantMap.MidpointsOf(map), device: x.device);
        var codes = bucketize(scaled, midpoints, outInt32: true).to(ScalarType.Byte);
        return (codes.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>NF4 dequantization of <paramref name="count"/> elements to a flat F32 tensor.</summary>
    public static Tensor Dequantize4Bit(Tensor packed, Tensor absmax, int blockSize, long count)
    {
        using var scope = NewDisposeScope();
        var bytes = packed.reshape(-1).to(ScalarType.Int64);
        var high = bytes.floor_divide(16);
        var low = bytes.remainder(16);
        var index = stack([high, low], 1).reshape(-1).narrow(0, 0, count);
        using var codes = tensor(Nf4Codebook.ToArray(), device: packed.device);
        var values = codes.index_select(0, index);
        return ScaleBackBlockwise(values, absmax, blockSize).MoveToOuterDisposeScope();
    }

    /// <summary>Blockwise 8-bit dequantization to a flat F32 tensor: <c>map[code] * absmax</c>.</summary>
    public static Tensor DequantizeBlockwise8(Tensor codes, Tensor absmax, ReadOnlySpan<float> map, int blockSize)
    {
        using var scope = NewDisposeScope();
        using var table = tensor(map.ToArray(), device: codes.device);
        var values = table.index_select(0, codes.reshape(-1).to(ScalarType.Int64));
        return ScaleBackBlockwise(values, absmax, blockSize).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per block absmax and scaled values: full blocks times <c>1 / max(absmax, 1e-38)</c>; a short last block
    /// divided by <c>max(absmax, 1e-38)</c>, which is also the absmax stored for it.
    /// </summary>
    private static (Tensor Scaled, Tensor Absmax) ScaleBlockwise(Tensor flat, int blockSize)
    {
        var n = flat.numel();
        var remainder = n % blockSize;
        var full = n - remainder;
        var blocks = full / blockSize;
        var scaledParts = new List<Tensor>(2);
        var absmaxParts = new List<Tensor>(2);
        if (blocks > 0)
        {
            var body = flat.narrow(0, 0, full).view(blocks, blockSize);
            var absmax = body.abs().amax(1);
            var reciprocal = absmax.clamp_min(DynamicQuantMap.MinAbsmax).reciprocal();
            scaledParts.Add(body.mul(reciprocal.unsqueeze(1)).reshape(-1));
            absmaxParts.Add(absmax);
        }

        if (remainder > 0)
        {
            var tail = flat.narrow(0, full, remainder);
            var divisor = tail.abs().amax([0L], keepdim: true).clamp_min(DynamicQuantMap.MinAbsmax);
            scaledParts.Add(tail.div(divisor));
            absmaxParts.Add(divisor);
        }

        // Clamping to [-1, 1] (as bitsandbytes does) changes no code: values past ±1 already fall in the end buckets.
        return (Join(scaledParts), Join(absmaxParts));
    }

    private static Tensor ScaleBackBlockwise(Tensor values, Tensor absmax, int blockSize)
    {
        var n = values.numel();
        var remainder = n % blockSize;
        var full = n - remainder;
        var blocks = full / blockSize;
        var scale = absmax.reshape(-1).to(ScalarType.Float32);
        var parts = new List<Tensor>(2);
        if (blocks > 0)
        {
            parts.Add(values.narrow(0, 0, full).view(blocks, blockSize).mul(scale.narrow(0, 0, blocks).unsqueeze(1)).reshape(-1));
        }

        if (remainder > 0)
        {
            parts.Add(values.narrow(0, full, remainder).mul(scale.narrow(0, blocks, 1)));
        }

        return Join(parts);
    }

    private static Tensor Join(List<Tensor> parts) => parts.Count == 1 ? parts[0] : cat(parts);
}
