using System.Globalization;
using System.Text;
using System.Text.Json;
using TorchSharp;

namespace LoQT.Quantization;

/// <summary>
/// The non-tensor fields of a bitsandbytes 4-bit quant state, as stored (UTF-8 JSON in a U8 tensor) under
/// <c>X.weight.quant_state.bitsandbytes__nf4</c>.
/// </summary>
/// <param name="QuantType">"nf4" (or "fp4", which this project does not read).</param>
/// <param name="BlockSize">Elements per absmax block.</param>
/// <param name="DType">The original dtype as torch names it without the prefix: "float32", "bfloat16", "float16".</param>
/// <param name="Shape">The original shape.</param>
/// <param name="NestedBlockSize">With double quantization: absmax codes per nested scale; otherwise null.</param>
/// <param name="NestedDType">With double quantization: the nested scales' dtype ("float32"); otherwise null.</param>
/// <param name="NestedOffset">With double quantization: the offset added back to the absmax values; otherwise null.</param>
public sealed record BnbQuantState(
    string QuantType,
    int BlockSize,
    string DType,
    long[] Shape,
    int? NestedBlockSize = null,
    string? NestedDType = null,
    double? NestedOffset = null)
{
    /// <summary>Whether the absmax values are double-quantized.</summary>
    public bool IsNested => NestedBlockSize is not null;

    /// <summary>The state of an NF4 tensor.</summary>
    /// <param name="tensor">The quantized tensor.</param>
    public static BnbQuantState Of(Nf4Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.IsDoubleQuantized
            ? new BnbQuantState("nf4", tensor.BlockSize, TorchDTypeName(tensor.OriginalDType), tensor.Shape, tensor.NestedBlockSize, "float32", tensor.NestedOffset)
            : new BnbQuantState("nf4", tensor.BlockSize, TorchDTypeName(tensor.OriginalDType), tensor.Shape);
    }

    /// <summary>
    /// The JSON bitsandbytes writes (Python's <c>json.dumps</c> of the dict, keys in its order: quant_type, blocksize,
    /// dtype, shape, then nested_blocksize, nested_dtype, nested_offset).
    /// </summary>
    public string ToJson()
    {
        var json = new StringBuilder();
        json.Append("{\"quant_type\": ").Append(JsonString(QuantType))
            .Append(", \"blocksize\": ").Append(BlockSize.ToString(CultureInfo.InvariantCulture))
            .Append(", \"dtype\": ").Append(JsonString(DType))
            .Append(", \"shape\": [").Append(string.Join(", ", Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))).Append(']');
        if (IsNested)
        {
            json.Append(", \"nested_blocksize\": ").Append(NestedBlockSize!.Value.ToString(CultureInfo.InvariantCulture))
                .Append(", \"nested_dtype\": ").Append(JsonString(NestedDType ?? "float32"))
                .Append(", \"nested_offset\": ").Append(PythonFloat.Repr(NestedOffset ?? 0));
        }

        return json.Append('}').ToString();
    }

    /// <summary>The UTF-8 bytes of <see cref="ToJson"/> (the U8 tensor's data).</summary>
    public byte[] ToBytes() => Encoding.UTF8.GetBytes(ToJson());

    /// <summary>Parses the stored JSON.</summary>
    /// <param name="utf8Json">The U8 tensor's bytes.</param>
    /// <param name="source">What to name in errors (the tensor and file).</param>
    /// <exception cref="InvalidDataException">The JSON is malformed or lacks a field.</exception>
    public static BnbQuantState Parse(ReadOnlySpan<byte> utf8Json, string source)
    {
        try
        {
            var reader = new Utf8JsonReader(utf8Json);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            var quantType = Required(root, "quant_type", source).GetString()!;
            var blockSize = Required(root, "blocksize", source).GetInt32();
            var dtype = Required(root, "dtype", source).GetString()!;
            var shapeElement = Required(root, "shape", source);
            var shape = shapeElement.ValueKind == JsonValueKind.Null ? [] : shapeElement.EnumerateArray().Select(e => e.GetInt64()).ToArray();
            if (!root.TryGetProperty("nested_blocksize", out var nestedBlockSize))
            {
                return new BnbQuantState(quantType, blockSize, dtype, shape);
            }

            var offset = Required(root, "nested_offset", source);
            return new BnbQuantState(
                quantType, blockSize, dtype, shape, nestedBlockSize.GetInt32(), Required(root, "nested_dtype", source).GetString(),
                offset.ValueKind == JsonValueKind.String ? double.Parse(offset.GetString()!, CultureInfo.InvariantCulture) : offset.GetDouble());
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: the bitsandbytes quant state is not valid JSON with the expected fields ({e.Message})", e);
        }
    }

    /// <summary>torch's name of a dtype without the <c>torch.</c> prefix, as bitsandbytes stores it.</summary>
    /// <param name="dtype">The dtype.</param>
    public static string TorchDTypeName(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float32 => "float32",
        torch.ScalarType.Float16 => "float16",
        torch.ScalarType.BFloat16 => "bfloat16",
        torch.ScalarType.Float64 => "float64",
        _ => throw new ArgumentException($"NF4 weights come from floating-point tensors; got {dtype}.", nameof(dtype)),
    };

    /// <summary>The dtype a stored name stands for (also accepts torch's aliases "float", "half", "double").</summary>
    /// <param name="name">The stored name.</param>
    /// <exception cref="InvalidDataException">Not a floating-point dtype name.</exception>
    public static torch.ScalarType ParseTorchDType(string name) => name switch
    {
        "float32" or "float" => torch.ScalarType.Float32,
        "float16" or "half" => torch.ScalarType.Float16,
        "bfloat16" => torch.ScalarType.BFloat16,
        "float64" or "double" => torch.ScalarType.Float64,
        _ => throw new InvalidDataException($"'{name}' is not a floating-point torch dtype"),
    };

    private static JsonElement Required(JsonElement root, string name, string source) =>
        root.TryGetProperty(name, out var value) ? value : throw new InvalidDataException($"{source}: the bitsandbytes quant state has no '{name}'");

    private static string JsonString(string value) => JsonSerializer.Serialize(value);
}
