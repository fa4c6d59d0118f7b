namespace LoQT.SafeTensors;

/// <summary>The element types a safetensors file can hold that this library reads and writes.</summary>
/// <remarks>Header names are the upper-case member names (<c>"F32"</c>, <c>"BOOL"</c>, ...); see <see cref="SafeTensorDTypes"/>.</remarks>
public enum SafeTensorDType
{
    /// <summary>IEEE 754 binary64.</summary>
    F64,

    /// <summary>IEEE 754 binary32.</summary>
    F32,

    /// <summary>IEEE 754 binary16.</summary>
    F16,

    /// <summary>bfloat16 (the upper half of a binary32).</summary>
    BF16,

    /// <summary>Signed 64-bit integer.</summary>
    I64,

    /// <summary>Signed 32-bit integer.</summary>
    I32,

    /// <summary>Signed 16-bit integer.</summary>
    I16,

    /// <summary>Signed 8-bit integer.</summary>
    I8,

    /// <summary>Unsigned 8-bit integer.</summary>
    U8,

    /// <summary>Boolean, one byte per element (0 or 1).</summary>
    BOOL,
}
