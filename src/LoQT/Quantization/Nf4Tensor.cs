using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Quantization;

/// <summary>Which implementation <see cref="Nf4Tensor"/> uses.</summary>
public enum Nf4Kernel
{
    /// <summary><see cref="Nf4Cpu"/> for CPU tensors, torch ops on other devices.</summary>
    Auto,

    /// <summary>Torch ops on every device (the portable path; slower on the CPU).</summary>
    TorchOps,
}

/// <summary>
/// A tensor stored as NF4 (4-bit NormalFloat, bitsandbytes layout): packed codes plus one scale per block,
/// optionally with the scales themselves 8-bit quantized ("double quantization"). Works on any torch device.
/// </summary>
/// <remarks>
/// Owns its tensors: dispose it to free them. The tensors returned by <see cref="Packed"/>, <see cref="Absmax"/>
/// and <see cref="NestedAbsmax"/> belong to this object and are valid until it is disposed.
/// </remarks>
public sealed class Nf4Tensor : IDisposable
{
    /// <summary>Block size of the nested (double) quantization of the scales, as bitsandbytes uses.</summary>
    public const int NestedBlockSizeDefault = 256;

    private readonly long[] shape;
    private readonly float[] nestedQuantMap;
    private bool disposed;

    private Nf4Tensor(long[] shape, int blockSize, ScalarType originalDType, Tensor packed, Tensor absmax, Tensor? nestedAbsmax, float nestedOffset, int nestedBlockSize, float[] nestedQuantMap)
    {
        this.shape = shape;
        BlockSize = blockSize;
        OriginalDType = originalDType;
        Packed = packed;
        Absmax = absmax;
        NestedAbsmax = nestedAbsmax;
        NestedOffset = nestedOffset;
        NestedBlockSize = nestedBlockSize;
        this.nestedQuantMap = nestedQuantMap;
    }

    /// <summary>The shape of the original tensor.</summary>
    public long[] Shape => (long[])shape.Clone();

    /// <summary>Number of elements of the original tensor.</summary>
    public long ElementCount => shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Elements per absmax block.</summary>
    public int BlockSize { get; }

    /// <summary>The dtype the tensor had before quantization (the default of <see cref="Dequantize"/>).</summary>
    public ScalarType OriginalDType { get; }

    /// <summary>Whether the absmax values are themselves 8-bit quantized.</summary>
    public bool IsDoubleQuantized => NestedAbsmax is not null;

    /// <summary>The codes: U8 [ceil(n/2), 1], two per byte, the first element in the high nibble.</summary>
    public Tensor Packed { get; }

    /// <summary>One scale per block: F32, or U8 codes of the signed dynamic map when double-quantized.</summary>
    public Tensor Absmax { get; }

    /// <summary>With double quantization: F32 scale per <see cref="NestedBlockSize"/> absmax codes; otherwise null.</summary>
    public Tensor? NestedAbsmax { get; }

    /// <summary>With double quantization: the mean of the absmax values, subtracted before quantizing them; otherwise 0.</summary>
    public float NestedOffset { get; }

    /// <summary>With double quantization: absmax codes per nested scale (256).</summary>
    public int NestedBlockSize { get; }

    /// <summary>The 256-entry map the absmax codes index (the signed dynamic map unless loaded otherwise).</summary>
    public ReadOnlySpan<float> NestedQuantMap => nestedQuantMap;

    /// <summary>The device the packed data lives on.</summary>
    public Device Device => Packed.device;

    /// <summary>Bytes of quantized storage: packed codes, absmax, and nested absmax and offset when double-quantized.</summary>
    public long StorageBytes =>
        Packed.numel() * Packed.ElementSize
        + Absmax.numel() * Absmax.ElementSize
        + (NestedAbsmax is null ? 0 : (NestedAbsmax.numel() * NestedAbsmax.ElementSize) + sizeof(float));

    /// <summary>
    /// NF4-quantizes <paramref name="x"/> (F32, F16, BF16 or F64, any shape, any device), bit-exactly as bitsandbytes'
    /// <c>quantize_4bit(quant_type="nf4")</c> (with <c>compress_statistics</c> when <paramref name="doubleQuant"/>).
    /// </summary>
    /// <param name="x">The tensor; it is not modified.</param>
    /// <param name="blockSize">Elements per block: a power of two from 32 to 4096.</param>
    /// <param name="doubleQuant">Also quantize the absmax values to 8 bits (blocks of 256, offset by their mean).</param>
    /// <param name="kernel">Which implementation to use.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="blockSize"/> is not allowed.</exception>
    /// <exception cref="ArgumentException"><paramref name="x"/> is empty or not floating point.</exception>
    public static Nf4Tensor Quantize(Tensor x, int blockSize = Nf4BlockSizes.Default, bool doubleQuant = false, Nf4Kernel kernel = Nf4Kernel.Auto)
    {
        ArgumentNullException.ThrowIfNull(x);
        Nf4BlockSizes.Validate(blockSize, nameof(blockSize));
        if (x.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64))
        {
            throw new ArgumentException($"NF4 quantizes floating-point tensors (F32, F16, BF16, F64); got {x.dtype}.", nameof(x));
        }

        if (x.numel() == 0)
        {
            throw new ArgumentException("Cannot quantize an empty tensor.", nameof(x));
        }

        using var scope = NewDisposeScope();
        var (packed, absmax) = UseCpu(x.device, kernel) ? QuantizeOnCpu(x, blockSize) : Nf4TorchOps.Quantize4Bit(x, blockSize);
        Tensor? nestedAbsmax = null;
        var offset = 0f;
        if (doubleQuant)
        {
            // The mean is torch's own reduction on the absmax's device, so the offset matches bitsandbytes there.
            using var mean = absmax.mean();
            offset = mean.item<float>();
            using var centered = absmax - mean;
            var (codes, nested) = UseCpu(x.device, kernel)
                ? QuantizeBlockwise8OnCpu(centered, NestedBlockSizeDefault)
                : Nf4TorchOps.QuantizeBlockwise8(centered, DynamicQuantMap.SignedValues, NestedBlockSizeDefault);
            absmax = codes;
            nestedAbsmax = nested.DetachFromDisposeScope();
        }

        return new Nf4Tensor(
            x.shape, blockSize, x.dtype, packed.DetachFromDisposeScope(), absmax.DetachFromDisposeScope(), nestedAbsmax, offset,
            NestedBlockSizeDefault, DynamicQuantMap.Signed);
    }

    /// <summary>
    /// Rebuilds an NF4 tensor from stored parts (for loading). The parts are shared, not copied: this object holds its
    /// own references, so the caller may dispose its handles.
    /// </summary>
    /// <param name="packed">U8 packed codes: ceil(n/2) bytes (any shape, e.g. [ceil(n/2), 1]).</param>
    /// <param name="absmax">F32 scales (one per block), or U8 codes when <paramref name="nestedAbsmax"/> is given.</param>
    /// <param name="shape">The original shape.</param>
    /// <param name="blockSize">Elements per block.</param>
    /// <param name="originalDType">The original dtype (the default of <see cref="Dequantize"/>).</param>
    /// <param name="nestedAbsmax">F32 scales of the absmax codes when double-quantized.</param>
    /// <param name="nestedOffset">The offset added back to dequantized absmax values.</param>
    /// <param name="nestedBlockSize">Absmax codes per nested scale.</param>
    /// <param name="nestedQuantMap">The 256-entry map of the absmax codes; the signed dynamic map when null.</param>
    /// <exception cref="ArgumentException">The sizes or dtypes do not fit together.</exception>
    public static Nf4Tensor FromParts(
        Tensor packed,
        Tensor absmax,
        long[] shape,
        int blockSize,
        ScalarType originalDType,
        Tensor? nestedAbsmax = null,
        float nestedOffset = 0f,
        int nestedBlockSize = NestedBlockSizeDefault,
        ReadOnlySpan<float> nestedQuantMap = default)
    {
        ArgumentNullException.ThrowIfNull(packed);
        ArgumentNullException.ThrowIfNull(absmax);
        ArgumentNullException.ThrowIfNull(shape);
        Nf4BlockSizes.Validate(blockSize, nameof(blockSize));
        if (shape.Any(d => d < 0))
        {
            throw new ArgumentException($"Invalid shape [{string.Join(", ", shape)}].", nameof(shape));
        }

        var count = shape.Aggregate(1L, (a, b) => a * b);
        if (packed.dtype != ScalarType.Byte || packed.numel() != Nf4BlockSizes.PackedLength(count))
        {
            throw new ArgumentException($"Packed NF4 data for shape [{string.Join(", ", shape)}] must be U8 with {Nf4BlockSizes.PackedLength(count)} elements; got {packed.dtype} with {packed.numel()}.", nameof(packed));
        }

        var blocks = Nf4BlockSizes.BlockCount(count, blockSize);
        var expectedAbsmaxType = nestedAbsmax is null ? ScalarType.Float32 : ScalarType.Byte;
        if (absmax.dtype != expectedAbsmaxType || absmax.numel() != blocks)
        {
            throw new ArgumentException($"absmax for {count} elements in blocks of {blockSize} must be {expectedAbsmaxType} with {blocks} elements; got {absmax.dtype} with {absmax.numel()}.", nameof(absmax));
        }

        float[] map;
        if (nestedAbsmax is not null)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(nestedBlockSize, 1, nameof(nestedBlockSize));
            var nestedBlocks = DynamicQuantMap.BlockCount(blocks, nestedBlockSize);
            if (nestedAbsmax.dtype != ScalarType.Float32 || nestedAbsmax.numel() != nestedBlocks)
            {
                throw new ArgumentException($"nested_absmax for {blocks} absmax codes in blocks of {nestedBlockSize} must be F32 with {nestedBlocks} elements; got {nestedAbsmax.dtype} with {nestedAbsmax.numel()}.", nameof(nestedAbsmax));
            }

            if (!nestedQuantMap.IsEmpty && nestedQuantMap.Length != DynamicQuantMap.Size)
            {
                throw new ArgumentException($"The nested quant map must have {DynamicQuantMap.Size} entries; got {nestedQuantMap.Length}.", nameof(nestedQuantMap));
            }

            map = nestedQuantMap.IsEmpty ? DynamicQuantMap.Signed : nestedQuantMap.ToArray();
        }
        else
        {
            map = DynamicQuantMap.Signed;
        }

        return new Nf4Tensor(
            (long[])shape.Clone(), blockSize, originalDType, packed.detach().DetachFromDisposeScope(), absmax.detach().DetachFromDisposeScope(),
            nestedAbsmax?.detach().DetachFromDisposeScope(), nestedAbsmax is null ? 0f : nestedOffset, nestedBlockSize, map);
    }

    /// <summary>
    /// Dequantizes to a new tensor of the original shape on this tensor's device, exactly as bitsandbytes'
    /// <c>dequantize_4bit</c>: <c>code[index] * absmax</c> in fp32, then converted.
    /// </summary>
    /// <param name="dtype">Output dtype (F32, F16, BF16 or F64); the original dtype when null.</param>
    /// <param name="kernel">Which implementation to use.</param>
    public Tensor Dequantize(ScalarType? dtype = null, Nf4Kernel kernel = Nf4Kernel.Auto)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var target = dtype ?? OriginalDType;
        if (target is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64))
        {
            throw new ArgumentException($"NF4 dequantizes to F32, F16, BF16 or F64; got {target}.", nameof(dtype));
        }

        using var scope = NewDisposeScope();
        Tensor result;
        if (UseCpu(Device, kernel))
        {
            result = DequantizeOnCpu(target);
        }
        else
        {
            var absmax = IsDoubleQuantized
                ? Nf4TorchOps.DequantizeBlockwise8(Absmax, NestedAbsmax!, nestedQuantMap, NestedBlockSize).add(NestedOffset)
                : Absmax;
            result = Nf4TorchOps.Dequantize4Bit(Packed, absmax, BlockSize, ElementCount).to(target).reshape(shape);
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Dequantizes into an existing tensor (no allocation on the CPU path; for buffers reused across forward passes).
    /// </summary>
    /// <param name="destination">A contiguous F32, F16 or BF16 tensor on this tensor's device with as many elements (any shape).</param>
    /// <param name="kernel">Which implementation to use.</param>
    /// <exception cref="ArgumentException">The destination does not fit.</exception>
    public void DequantizeInto(Tensor destination, Nf4Kernel kernel = Nf4Kernel.Auto)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.numel() != ElementCount || !destination.is_contiguous()
            || destination.dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16)
            || destination.device_type != Device.type || destination.device_index != Device.index)
        {
            throw new ArgumentException(
                $"The destination must be a contiguous F32/F16/BF16 tensor of {ElementCount} elements on {Device}; got {destination.dtype} [{string.Join(", ", destination.shape)}] on {destination.device}.",
                nameof(destination));
        }

        using var scope = NewDisposeScope();
        if (UseCpu(Device, kernel))
        {
            var packed = Packed.contiguous();
            var absmax = IsDoubleQuantized ? DequantizeAbsmax() : Absmax.contiguous();
            Nf4Cpu.DequantizeParallel(
                CpuTensorMemory.Address(packed), CpuTensorMemory.Address(absmax), CpuTensorMemory.Address(destination), TargetKindOf(destination.dtype),
                ElementCount, BlockSize, Nf4Cpu.Best);
            return;
        }

        using var values = Dequantize(destination.dtype, kernel);
        destination.copy_(values.reshape(destination.shape));
    }

    /// <summary>The F32 absmax values (dequantized from the nested codes when double-quantized), on this tensor's device.</summary>
    public Tensor DequantizeAbsmax()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (!IsDoubleQuantized)
        {
            return Absmax.clone();
        }

        using var scope = NewDisposeScope();
        Tensor result;
        if (Device.type == DeviceType.CPU)
        {
            result = empty(Absmax.numel(), ScalarType.Float32);
            unsafe
            {
                using var codes = Absmax.contiguous();
                using var nested = NestedAbsmax!.contiguous();
                var n = (int)Absmax.numel();
                var output = new Span<float>((float*)CpuTensorMemory.Address(result), n);
                DynamicQuantMap.DequantizeBlockwise(
                    new ReadOnlySpan<byte>((byte*)CpuTensorMemory.Address(codes), n),
                    new ReadOnlySpan<float>((float*)CpuTensorMemory.Address(nested), (int)nested.numel()),
                    nestedQuantMap, output, NestedBlockSize);
                var offset = NestedOffset;
                for (var i = 0; i < output.Length; i++)
                {
                    output[i] += offset;
                }
            }
        }
        else
        {
            result = Nf4TorchOps.DequantizeBlockwise8(Absmax, NestedAbsmax!, nestedQuantMap, NestedBlockSize).add(NestedOffset);
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>A copy of this tensor on <paramref name="device"/> (a new object that must be disposed too).</summary>
    /// <param name="device">The target device.</param>
    public Nf4Tensor To(Device device)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return new Nf4Tensor(
            (long[])shape.Clone(), BlockSize, OriginalDType, Packed.to(device).DetachFromDisposeScope(), Absmax.to(device).DetachFromDisposeScope(),
            NestedAbsmax?.to(device).DetachFromDisposeScope(), NestedOffset, NestedBlockSize, nestedQuantMap);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        Packed.Dispose();
        Absmax.Dispose();
        NestedAbsmax?.Dispose();
    }

    private static Nf4Cpu.TargetKind TargetKindOf(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => Nf4Cpu.TargetKind.Float16,
        ScalarType.BFloat16 => Nf4Cpu.TargetKind.BFloat16,
        _ => Nf4Cpu.TargetKind.Float32,
    };

    private static bool UseCpu(Device device, Nf4Kernel kernel) => kernel == Nf4Kernel.Auto && device.type == DeviceType.CPU;

    private static (Tensor Packed, Tensor Absmax) QuantizeOnCpu(Tensor x, int blockSize)
    {
        using var scope = NewDisposeScope();
        var source = x.dtype == ScalarType.Float64 ? x.to(ScalarType.Float32) : x;
        source = source.contiguous();
        var count = source.numel();
        var packed = empty([Nf4BlockSizes.PackedLength(count), 1], ScalarType.Byte);
        var absmax = empty(Nf4BlockSizes.BlockCount(count, blockSize), ScalarType.Float32);
        var kind = source.dtype switch
        {
            ScalarType.Float16 => Nf4Cpu.SourceKind.Float16,
            ScalarType.BFloat16 => Nf4Cpu.SourceKind.BFloat16,
            _ => Nf4Cpu.SourceKind.Float32,
        };
        Nf4Cpu.QuantizeParallel(CpuTensorMemory.Address(source), kind, count, CpuTensorMemory.Address(packed), CpuTensorMemory.Address(absmax), blockSize, Nf4Cpu.Best);
        return (packed.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    private static unsafe (Tensor Codes, Tensor Absmax) QuantizeBlockwise8OnCpu(Tensor x, int blockSize)
    {
        using var scope = NewDisposeScope();
        var source = x.contiguous();
        var n = (int)source.numel();
        var codes = empty(n, ScalarType.Byte);
        var absmax = empty(DynamicQuantMap.BlockCount(n, blockSize), ScalarType.Float32);
        DynamicQuantMap.QuantizeBlockwise(
            new ReadOnlySpan<float>((float*)CpuTensorMemory.Address(source), n),
            DynamicQuantMap.SignedValues,
            new Span<byte>((byte*)CpuTensorMemory.Address(codes), n),
            new Span<float>((float*)CpuTensorMemory.Address(absmax), (int)absmax.numel()),
            blockSize);
        return (codes.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    private Tensor DequantizeOnCpu(ScalarType target)
    {
        using var scope = NewDisposeScope();
        var packed = Packed.contiguous();
        var absmax = IsDoubleQuantized ? DequantizeAbsmax() : Absmax.contiguous();
        var kernelTarget = target == ScalarType.Float64 ? ScalarType.Float32 : target;
        var output = empty(shape, kernelTarget);
        Nf4Cpu.DequantizeParallel(
            CpuTensorMemory.Address(packed), CpuTensorMemory.Address(absmax), CpuTensorMemory.Address(output), TargetKindOf(kernelTarget), ElementCount, BlockSize, Nf4Cpu.Best);
        if (target == ScalarType.Float64)
        {
            output = output.to(ScalarType.Float64);
        }

        return output.MoveToOuterDisposeScope();
    }
}
