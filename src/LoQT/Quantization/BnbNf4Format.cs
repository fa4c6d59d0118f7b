using System.Runtime.InteropServices;
using LoQT.SafeTensors;
using TorchSharp;

namespace LoQT.Quantization;

/// <summary>One safetensors entry of a serialized NF4 weight.</summary>
/// <param name="Name">The tensor name.</param>
/// <param name="DType">Its dtype.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Data">Its raw little-endian bytes.</param>
public sealed record BnbSerializedTensor(string Name, SafeTensorDType DType, long[] Shape, byte[] Data);

/// <summary>
/// NF4 weights in the safetensors layout that bitsandbytes and Hugging Face transformers save and load: for a weight
/// <c>X.weight</c>, the packed codes under <c>X.weight</c> and the quant state beside it.
/// </summary>
/// <remarks>
/// Keys: <c>X.weight</c> (U8 [ceil(n/2), 1]), <c>X.weight.absmax</c> (F32, or U8 codes when double-quantized),
/// <c>X.weight.quant_map</c> (F32[16]), with double quantization <c>X.weight.nested_absmax</c> (F32) and
/// <c>X.weight.nested_quant_map</c> (F32[256]), and <c>X.weight.quant_state.bitsandbytes__nf4</c> (U8: UTF-8 JSON of
/// the remaining fields, see <see cref="BnbQuantState"/>).
/// </remarks>
public static class BnbNf4Format
{
    /// <summary>Suffix of the packed quant-state key after the weight name.</summary>
    public const string QuantStateSuffix = ".quant_state.bitsandbytes__nf4";

    /// <summary>Suffix of the absmax key.</summary>
    public const string AbsmaxSuffix = ".absmax";

    /// <summary>Suffix of the NF4 code table key.</summary>
    public const string QuantMapSuffix = ".quant_map";

    /// <summary>Suffix of the nested absmax key (double quantization).</summary>
    public const string NestedAbsmaxSuffix = ".nested_absmax";

    /// <summary>Suffix of the nested map key (double quantization).</summary>
    public const string NestedQuantMapSuffix = ".nested_quant_map";

    private const string QuantStatePrefix = ".quant_state.bitsandbytes__";

    private static readonly string[] CompanionSuffixes = [AbsmaxSuffix, QuantMapSuffix, NestedAbsmaxSuffix, NestedQuantMapSuffix];

    /// <summary>
    /// Whether <paramref name="name"/> is one of the quant-state keys stored beside a quantized weight (absmax, maps,
    /// packed state), which loaders skip: they belong to the weight they follow, not to a module of their own.
    /// </summary>
    /// <param name="name">A tensor name.</param>
    public static bool IsQuantStateKey(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Contains(QuantStatePrefix, StringComparison.Ordinal)
            || CompanionSuffixes.Any(s => name.EndsWith(s, StringComparison.Ordinal) && name.Length > s.Length);
    }

    /// <summary>The weight a quant-state key belongs to (<c>X.weight.absmax</c> → <c>X.weight</c>), or null for other names.</summary>
    /// <param name="name">A tensor name.</param>
    public static string? WeightNameOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var state = name.IndexOf(QuantStatePrefix, StringComparison.Ordinal);
        if (state > 0)
        {
            return name[..state];
        }

        var suffix = CompanionSuffixes.FirstOrDefault(s => name.EndsWith(s, StringComparison.Ordinal) && name.Length > s.Length);
        return suffix is null ? null : name[..^suffix.Length];
    }

    /// <summary>The entries that represent <paramref name="tensor"/> under <paramref name="weightName"/>, in the order bitsandbytes writes them.</summary>
    /// <param name="weightName">The weight's name, e.g. <c>model.layers.0.mlp.up_proj.weight</c>.</param>
    /// <param name="tensor">The quantized weight (any device; copied to host memory here).</param>
    public static IReadOnlyList<BnbSerializedTensor> Serialize(string weightName, Nf4Tensor tensor)
    {
        ArgumentException.ThrowIfNullOrEmpty(weightName);
        ArgumentNullException.ThrowIfNull(tensor);
        var entries = new List<BnbSerializedTensor>
        {
            new(weightName, SafeTensorDType.U8, [Nf4BlockSizes.PackedLength(tensor.ElementCount), 1], HostBytes(tensor.Packed)),
            new(weightName + AbsmaxSuffix, tensor.IsDoubleQuantized ? SafeTensorDType.U8 : SafeTensorDType.F32, [tensor.Absmax.numel()], HostBytes(tensor.Absmax)),
            new(weightName + QuantMapSuffix, SafeTensorDType.F32, [Nf4Codebook.Count], FloatBytes(Nf4Codebook.Values)),
        };
        if (tensor.IsDoubleQuantized)
        {
            entries.Add(new(weightName + NestedAbsmaxSuffix, SafeTensorDType.F32, [tensor.NestedAbsmax!.numel()], HostBytes(tensor.NestedAbsmax)));
            entries.Add(new(weightName + NestedQuantMapSuffix, SafeTensorDType.F32, [DynamicQuantMap.Size], FloatBytes(tensor.NestedQuantMap)));
        }

        var state = BnbQuantState.Of(tensor).ToBytes();
        entries.Add(new(weightName + QuantStateSuffix, SafeTensorDType.U8, [state.Length], state));
        return entries;
    }

    /// <summary>Adds <paramref name="tensor"/> under <paramref name="weightName"/> with its quant state to a file being written.</summary>
    /// <param name="writer">The writer.</param>
    /// <param name="weightName">The weight's name.</param>
    /// <param name="tensor">The quantized weight.</param>
    public static void Write(SafeTensorsWriter writer, string weightName, Nf4Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(writer);
        foreach (var entry in Serialize(weightName, tensor))
        {
            writer.Add(entry.Name, entry.DType, entry.Shape, entry.Data);
        }
    }

    /// <summary>
    /// Adds <paramref name="tensor"/> under <paramref name="weightName"/> with its quant state to a sharded checkpoint being
    /// written, all in one shard: transformers reads a weight's quant state from the shard that holds the weight.
    /// </summary>
    /// <param name="writer">The writer.</param>
    /// <param name="weightName">The weight's name.</param>
    /// <param name="tensor">The quantized weight.</param>
    public static void Write(ShardedSafeTensorsWriter writer, string weightName, Nf4Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentException.ThrowIfNullOrEmpty(weightName);
        ArgumentNullException.ThrowIfNull(tensor);

        // The same entries as Serialize, in its order, but the large ones stream from the tensors instead of through
        // managed copies (a model's worth of short-lived large-object-heap arrays otherwise).
        var state = BnbQuantState.Of(tensor).ToBytes();
        var codeTable = FloatBytes(Nf4Codebook.Values);
        var nestedMap = tensor.IsDoubleQuantized ? FloatBytes(tensor.NestedQuantMap) : [];
        using var packed = tensor.Packed.reshape(Nf4BlockSizes.PackedLength(tensor.ElementCount), 1);
        using var absmax = tensor.Absmax.reshape(-1);
        using var nested = tensor.NestedAbsmax?.reshape(-1);
        writer.KeepTogether((packed.numel() * packed.ElementSize) + (absmax.numel() * absmax.ElementSize) + codeTable.Length
            + (nested is null ? 0 : nested.numel() * nested.ElementSize) + nestedMap.Length + state.Length);
        writer.Add(weightName, packed);
        writer.Add(weightName + AbsmaxSuffix, absmax);
        writer.Add(weightName + QuantMapSuffix, SafeTensorDType.F32, [Nf4Codebook.Count], codeTable);
        if (nested is not null)
        {
            writer.Add(weightName + NestedAbsmaxSuffix, nested);
            writer.Add(weightName + NestedQuantMapSuffix, SafeTensorDType.F32, [DynamicQuantMap.Size], nestedMap);
        }

        writer.Add(weightName + QuantStateSuffix, SafeTensorDType.U8, [state.Length], state);
    }

    /// <summary>Whether the checkpoint stores <paramref name="weightName"/> as a bitsandbytes 4-bit weight (it has the packed quant state).</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <param name="weightName">The weight's name.</param>
    public static bool IsQuantized(SafeTensorsCheckpoint checkpoint, string weightName)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return checkpoint.Contains(weightName + QuantStateSuffix);
    }

    /// <summary>Whether the file stores <paramref name="weightName"/> as a bitsandbytes 4-bit weight (it has the packed quant state).</summary>
    /// <param name="file">The file.</param>
    /// <param name="weightName">The weight's name.</param>
    public static bool IsQuantized(SafeTensorsFile file, string weightName)
    {
        ArgumentNullException.ThrowIfNull(file);
        return file.Contains(weightName + QuantStateSuffix);
    }

    /// <summary>Reads a bitsandbytes NF4 weight.</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <param name="weightName">The weight's name.</param>
    /// <param name="device">Where to put the tensors (CPU when null).</param>
    /// <exception cref="KeyNotFoundException">The weight or one of its quant-state entries is missing.</exception>
    /// <exception cref="InvalidDataException">The entries are inconsistent, or the weight is not NF4.</exception>
    public static Nf4Tensor Read(SafeTensorsCheckpoint checkpoint, string weightName, torch.Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        return Read(new Source(checkpoint.Contains, n => checkpoint.ReadTensor(n), checkpoint.Path), weightName, device);
    }

    /// <summary>Reads a bitsandbytes NF4 weight.</summary>
    /// <param name="file">The file.</param>
    /// <param name="weightName">The weight's name.</param>
    /// <param name="device">Where to put the tensors (CPU when null).</param>
    /// <exception cref="KeyNotFoundException">The weight or one of its quant-state entries is missing.</exception>
    /// <exception cref="InvalidDataException">The entries are inconsistent, or the weight is not NF4.</exception>
    public static Nf4Tensor Read(SafeTensorsFile file, string weightName, torch.Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Read(new Source(file.Contains, n => file.ReadTensor(n), file.Path), weightName, device);
    }

    /// <summary>Reads the packed quant state of a weight.</summary>
    /// <param name="checkpoint">The checkpoint.</param>
    /// <param name="weightName">The weight's name.</param>
    /// <exception cref="KeyNotFoundException">The weight has no packed quant state.</exception>
    public static BnbQuantState ReadQuantState(SafeTensorsCheckpoint checkpoint, string weightName)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var key = weightName + QuantStateSuffix;
        return BnbQuantState.Parse(checkpoint.GetBytes(key), $"tensor '{key}' in {checkpoint.Path}");
    }

    /// <summary>Reads a bitsandbytes NF4 weight through any tensor reader (e.g. positioned reads that keep file pages out of RSS).</summary>
    /// <param name="contains">Whether the source holds a tensor of that name.</param>
    /// <param name="readTensor">Reads a tensor as a new CPU tensor of its stored dtype and shape.</param>
    /// <param name="sourcePath">The file or folder, for errors.</param>
    /// <param name="weightName">The weight's name.</param>
    /// <param name="device">Where to put the tensors (CPU when null).</param>
    internal static Nf4Tensor Read(Func<string, bool> contains, Func<string, torch.Tensor> readTensor, string sourcePath, string weightName, torch.Device? device = null) =>
        Read(new Source(contains, readTensor, sourcePath), weightName, device);

    private static Nf4Tensor Read(Source source, string weightName, torch.Device? device)
    {
        ArgumentException.ThrowIfNullOrEmpty(weightName);
        var stateKey = weightName + QuantStateSuffix;
        if (!source.Contains(weightName))
        {
            throw new KeyNotFoundException($"tensor '{weightName}' is not in {source.Path}");
        }

        if (!source.Contains(stateKey))
        {
            var other = source.Contains(weightName + QuantStatePrefix + "fp4") ? " (it is stored as FP4, which is not supported)" : string.Empty;
            throw new KeyNotFoundException($"'{weightName}' in {source.Path} is not a bitsandbytes NF4 weight: no '{stateKey}'{other}");
        }

        BnbQuantState state;
        using (var stateTensor = source.ReadTensor(stateKey))
        {
            state = BnbQuantState.Parse(stateTensor.bytes, $"tensor '{stateKey}' in {source.Path}");
        }

        if (state.QuantType != "nf4")
        {
            throw new InvalidDataException($"'{weightName}' in {source.Path}: quant_type is '{state.QuantType}', expected 'nf4'");
        }

        var originalDType = BnbQuantState.ParseTorchDType(state.DType);
        using var scope = torch.NewDisposeScope();
        var packed = Load(source, weightName, device);
        var absmax = Load(source, weightName + AbsmaxSuffix, device);
        using (var quantMap = source.ReadTensor(Require(source, weightName + QuantMapSuffix)))
        {
            if (quantMap.dtype != torch.ScalarType.Float32 || !MemoryMarshal.Cast<byte, float>(quantMap.bytes).SequenceEqual(Nf4Codebook.Values))
            {
                throw new InvalidDataException($"'{weightName}{QuantMapSuffix}' in {source.Path} is not the NF4 code table");
            }
        }

        torch.Tensor? nestedAbsmax = null;
        float[]? nestedMap = null;
        if (state.IsNested)
        {
            nestedAbsmax = Load(source, weightName + NestedAbsmaxSuffix, device);
            using var map = source.ReadTensor(Require(source, weightName + NestedQuantMapSuffix));
            if (map.dtype != torch.ScalarType.Float32 || map.numel() != DynamicQuantMap.Size)
            {
                throw new InvalidDataException($"'{weightName}{NestedQuantMapSuffix}' in {source.Path} must be F32 with {DynamicQuantMap.Size} entries");
            }

            nestedMap = MemoryMarshal.Cast<byte, float>(map.bytes).ToArray();
        }

        try
        {
            return Nf4Tensor.FromParts(
                packed, absmax, state.Shape, state.BlockSize, originalDType, nestedAbsmax, (float)(state.NestedOffset ?? 0),
                state.NestedBlockSize ?? Nf4Tensor.NestedBlockSizeDefault, nestedMap);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{weightName}' in {source.Path}: {e.Message}", e);
        }
    }

    private static string Require(Source source, string name) =>
        source.Contains(name) ? name : throw new KeyNotFoundException($"'{name}' is missing from {source.Path} (part of a bitsandbytes NF4 weight)");

    private static torch.Tensor Load(Source source, string name, torch.Device? device)
    {
        var tensor = source.ReadTensor(Require(source, name));
        return device is null || device.type == DeviceType.CPU ? tensor : tensor.to(device, disposeAfter: true);
    }

    private static byte[] HostBytes(torch.Tensor tensor)
    {
        using var scope = torch.NewDisposeScope();
        return tensor.cpu().contiguous().bytes.ToArray();
    }

    private static byte[] FloatBytes(ReadOnlySpan<float> values) => MemoryMarshal.AsBytes(values).ToArray();

    private sealed record Source(Func<string, bool> Contains, Func<string, torch.Tensor> ReadTensor, string Path);
}
