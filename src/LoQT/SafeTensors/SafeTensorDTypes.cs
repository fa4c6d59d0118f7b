using TorchSharp;

namespace LoQT.SafeTensors;

/// <summary>Sizes, header names and torch equivalents of <see cref="SafeTensorDType"/>.</summary>
public static class SafeTensorDTypes
{
    /// <summary>Every supported dtype, in declaration order.</summary>
    public static IReadOnlyList<SafeTensorDType> All { get; } = Enum.GetValues<SafeTensorDType>();

    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F64 or SafeTensorDType.I64 => 8,
        SafeTensorDType.F32 or SafeTensorDType.I32 => 4,
        SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.I16 => 2,
        SafeTensorDType.I8 or SafeTensorDType.U8 or SafeTensorDType.BOOL => 1,
        _ => throw Unknown(dtype),
    };

    /// <summary>The name the safetensors header uses for <paramref name="dtype"/> (<c>"F32"</c>, <c>"BF16"</c>, <c>"BOOL"</c>, ...).</summary>
    public static string ToHeaderName(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F64 => "F64",
        SafeTensorDType.F32 => "F32",
        SafeTensorDType.F16 => "F16",
        SafeTensorDType.BF16 => "BF16",
        SafeTensorDType.I64 => "I64",
        SafeTensorDType.I32 => "I32",
        SafeTensorDType.I16 => "I16",
        SafeTensorDType.I8 => "I8",
        SafeTensorDType.U8 => "U8",
        SafeTensorDType.BOOL => "BOOL",
        _ => throw Unknown(dtype),
    };

    /// <summary>Parses a header dtype name (exact, case-sensitive, as the format defines it).</summary>
    /// <exception cref="InvalidDataException">The name is not one of the supported dtypes.</exception>
    public static SafeTensorDType Parse(string name) =>
        TryParse(name, out var dtype)
            ? dtype
            : throw new InvalidDataException(
                $"unknown dtype '{name}' (supported: {string.Join(", ", All.Select(d => d.ToHeaderName()))})");

    /// <summary>Parses a header dtype name; false when it is not a supported dtype.</summary>
    public static bool TryParse(string name, out SafeTensorDType dtype)
    {
        foreach (var candidate in All)
        {
            if (string.Equals(candidate.ToHeaderName(), name, StringComparison.Ordinal))
            {
                dtype = candidate;
                return true;
            }
        }

        dtype = default;
        return false;
    }

    /// <summary>The torch element type with the same layout.</summary>
    public static torch.ScalarType ToScalarType(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F64 => torch.ScalarType.Float64,
        SafeTensorDType.F32 => torch.ScalarType.Float32,
        SafeTensorDType.F16 => torch.ScalarType.Float16,
        SafeTensorDType.BF16 => torch.ScalarType.BFloat16,
        SafeTensorDType.I64 => torch.ScalarType.Int64,
        SafeTensorDType.I32 => torch.ScalarType.Int32,
        SafeTensorDType.I16 => torch.ScalarType.Int16,
        SafeTensorDType.I8 => torch.ScalarType.Int8,
        SafeTensorDType.U8 => torch.ScalarType.Byte,
        SafeTensorDType.BOOL => torch.ScalarType.Bool,
        _ => throw Unknown(dtype),
    };

    /// <summary>The safetensors dtype of a torch element type.</summary>
    /// <exception cref="ArgumentException">The torch type has no supported safetensors counterpart (complex types, for instance).</exception>
    public static SafeTensorDType FromScalarType(torch.ScalarType scalarType) => scalarType switch
    {
        torch.ScalarType.Float64 => SafeTensorDType.F64,
        torch.ScalarType.Float32 => SafeTensorDType.F32,
        torch.ScalarType.Float16 => SafeTensorDType.F16,
        torch.ScalarType.BFloat16 => SafeTensorDType.BF16,
        torch.ScalarType.Int64 => SafeTensorDType.I64,
        torch.ScalarType.Int32 => SafeTensorDType.I32,
        torch.ScalarType.Int16 => SafeTensorDType.I16,
        torch.ScalarType.Int8 => SafeTensorDType.I8,
        torch.ScalarType.Byte => SafeTensorDType.U8,
        torch.ScalarType.Bool => SafeTensorDType.BOOL,
        _ => throw new ArgumentException($"torch dtype {scalarType} has no safetensors counterpart that this library supports.", nameof(scalarType)),
    };

    private static ArgumentOutOfRangeException Unknown(SafeTensorDType dtype) =>
        new(nameof(dtype), dtype, "Not a defined SafeTensorDType.");
}
