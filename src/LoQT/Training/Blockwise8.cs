using LoQT.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>Blockwise 8-bit quantization of fp32 tensors with a dynamic map, on the CPU kernels or torch ops.</summary>
internal static class Blockwise8
{
    /// <summary>Quantizes the flat fp32 values <paramref name="values"/> into <paramref name="codes"/> (U8) and <paramref name="absmax"/> (F32), in place.</summary>
    public static void Quantize(Tensor values, ReadOnlySpan<float> map, Tensor codes, Tensor absmax, int blockSize)
    {
        if (values.device.type == DeviceType.CPU)
        {
            using var source = values.contiguous();
            var n = (int)source.numel();
            unsafe
            {
                DynamicQuantMap.QuantizeBlockwise(
                    new ReadOnlySpan<float>((float*)CpuTensorMemory.Address(source), n),
                    map,
                    new Span<byte>((byte*)CpuTensorMemory.Address(codes), n),
                    new Span<float>((float*)CpuTensorMemory.Address(absmax), (int)absmax.numel()),
                    blockSize);
            }

            return;
        }

        var (newCodes, newAbsmax) = Nf4TorchOps.QuantizeBlockwise8(values, map, blockSize);
        using (newCodes)
        using (newAbsmax)
        using (var noGrad = no_grad())
        {
            codes.copy_(newCodes.reshape(codes.shape));
            absmax.copy_(newAbsmax);
        }
    }

    /// <summary>The flat fp32 values <c>map[code] · absmax</c> (a new tensor).</summary>
    public static Tensor Dequantize(Tensor codes, Tensor absmax, ReadOnlySpan<float> map, int blockSize)
    {
        if (codes.device.type == DeviceType.CPU)
        {
            var n = (int)codes.numel();
            var output = empty(n, ScalarType.Float32);
            unsafe
            {
                DynamicQuantMap.DequantizeBlockwise(
                    new ReadOnlySpan<byte>((byte*)CpuTensorMemory.Address(codes), n),
                    new ReadOnlySpan<float>((float*)CpuTensorMemory.Address(absmax), (int)absmax.numel()),
                    map,
                    new Span<float>((float*)CpuTensorMemory.Address(output), n),
                    blockSize);
            }

            return output;
        }

        return Nf4TorchOps.DequantizeBlockwise8(codes, absmax, map, blockSize);
    }
}
