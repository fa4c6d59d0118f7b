using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Native;

/// <summary>
/// Matrix products in the compute dtype, routed around libtorch's slow CPU bf16 GEMM where a CPU has no fast one.
/// </summary>
/// <remarks>
/// <para>libtorch's CPU bf16 GEMM is fast only with AMX (oneDNN's AMX kernels, about 3× fp32). With AVX-512 but no AMX
/// oneDNN's bf16 kernels measured 1.1–2× slower than MKL's fp32 SGEMM on these models' shapes, and without AVX-512
/// (an AVX2-only AMD EPYC, say) libtorch falls back to a scalar, single-threaded loop: a 20m LoQT step took 3.5 s
/// instead of 1.6 s, and a 7b one did not finish its first step in 17 minutes. So without AMX the products below
/// convert bf16 operands to fp32 (exact), multiply with SGEMM and round the product to bf16: the numbers a bf16 GEMM
/// with fp32 accumulation gives, at fp32 speed, for a transient fp32 copy of the operands.</para>
/// <para>Elsewhere (GPUs, CPUs with AMX, fp32 and fp16 operands) they are plain <c>matmul</c> and <c>linear</c>.
/// <c>LOQT_CPU_BF16_GEMM=native</c> or <c>fp32</c> overrides the detection.</para>
/// </remarks>
public static class Gemm
{
    /// <summary>Environment variable that overrides <see cref="CpuHasFastBf16"/>: <c>native</c> or <c>fp32</c>.</summary>
    public const string OverrideVariable = "LOQT_CPU_BF16_GEMM";

    private static readonly Lazy<bool> FastBf16 = new(DetectFastBf16);

    /// <summary>Whether libtorch multiplies bf16 matrices on this CPU faster than fp32 ones (AMX, through oneDNN).</summary>
    public static bool CpuHasFastBf16 => FastBf16.Value;

    /// <summary>
    /// The dtype in which operands of <paramref name="dtype"/> on <paramref name="device"/> are multiplied: fp32 for
    /// bf16 on a CPU without a fast bf16 GEMM, <paramref name="dtype"/> otherwise. Produce an operand (a dequantized
    /// weight, say) directly in this dtype to skip a conversion.
    /// </summary>
    public static ScalarType OperandDtype(ScalarType dtype, Device device) =>
        Upcasts(dtype, device.type, CpuHasFastBf16) ? ScalarType.Float32 : dtype;

    /// <summary><c>a·b</c> (as <c>torch.matmul</c>) in <paramref name="a"/>'s dtype; see <see cref="Gemm"/>.</summary>
    public static Tensor MatMul(Tensor a, Tensor b) => MatMul(a, b, Upcasts(a, b, CpuHasFastBf16));

    /// <summary><c>x·wᵀ + bias</c> (as <c>torch.nn.functional.linear</c>) in <paramref name="x"/>'s dtype; see <see cref="Gemm"/>.</summary>
    public static Tensor Linear(Tensor x, Tensor w, Tensor? bias = null) => Linear(x, w, bias, Upcasts(x, w, CpuHasFastBf16));

    /// <summary><see cref="MatMul(Tensor, Tensor)"/> with the choice made by the caller (tests compare both).</summary>
    internal static Tensor MatMul(Tensor a, Tensor b, bool upcast)
    {
        if (!upcast)
        {
            return a.matmul(b);
        }

        using var a32 = a.to(ScalarType.Float32);
        using var b32 = b.to(ScalarType.Float32);
        using var product = a32.matmul(b32);
        return product.to(a.dtype);
    }

    /// <summary><see cref="Linear(Tensor, Tensor, Tensor?)"/> with the choice made by the caller.</summary>
    internal static Tensor Linear(Tensor x, Tensor w, Tensor? bias, bool upcast)
    {
        if (!upcast)
        {
            return nn.functional.linear(x, w, bias);
        }

        using var x32 = x.to(ScalarType.Float32);
        using var w32 = w.to(ScalarType.Float32);
        using var bias32 = bias?.to(ScalarType.Float32);
        using var product = nn.functional.linear(x32, w32, bias32);
        return product.to(x.dtype);
    }

    private static bool Upcasts(Tensor a, Tensor b, bool fastBf16) =>
        Upcasts(a.dtype, a.device_type, fastBf16) || Upcasts(b.dtype, b.device_type, fastBf16);

    private static bool Upcasts(ScalarType dtype, DeviceType device, bool fastBf16) =>
        dtype == ScalarType.BFloat16 && device == DeviceType.CPU && !fastBf16;

    private static bool DetectFastBf16() =>
        Environment.GetEnvironmentVariable(OverrideVariable)?.Trim().ToLowerInvariant() switch
        {
            "native" => true,
            "fp32" => false,
            // .NET reports no AMX support, so Linux's CPU flags tell; elsewhere (and on Arm) the fp32 route is taken,
            // which is never slower than a bf16 GEMM without AMX.
            _ => CpuFlags().Contains("amx_bf16"),
        };

    private static HashSet<string> CpuFlags()
    {
        try
        {
            if (OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo"))
            {
                var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
                if (line is not null && line.IndexOf(':', StringComparison.Ordinal) is var colon and >= 0)
                {
                    return [.. line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return [];
    }
}
