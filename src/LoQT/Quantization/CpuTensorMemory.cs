using TorchSharp;

namespace LoQT.Quantization;

/// <summary>Raw access to the memory of contiguous CPU tensors, for the vectorized kernels.</summary>
internal static class CpuTensorMemory
{
    /// <summary>The address of the first element of a contiguous CPU tensor (valid while the tensor lives).</summary>
    /// <remarks>TorchSharp exposes memory only as a span of at most 2 GiB; a one-element view of the start gives the address of any size.</remarks>
    public static unsafe IntPtr Address(torch.Tensor tensor)
    {
        if (tensor.device_type != DeviceType.CPU)
        {
            throw new InvalidOperationException($"Expected a CPU tensor, got one on {tensor.device}.");
        }

        if (!tensor.is_contiguous())
        {
            throw new InvalidOperationException("Expected a contiguous tensor.");
        }

        if (tensor.numel() == 0)
        {
            return IntPtr.Zero;
        }

        using var flat = tensor.reshape(-1);
        using var first = flat.narrow(0, 0, 1);
        fixed (byte* p = first.bytes)
        {
            return (IntPtr)p;
        }
    }
}
