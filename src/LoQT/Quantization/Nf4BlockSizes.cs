using System.Numerics;

namespace LoQT.Quantization;

/// <summary>The block sizes NF4 allows (bitsandbytes': powers of two from 32 to 4096) and the sizes derived from them.</summary>
public static class Nf4BlockSizes
{
    /// <summary>The default and most common block size.</summary>
    public const int Default = 64;

    /// <summary>Smallest allowed block size.</summary>
    public const int Min = 32;

    /// <summary>Largest allowed block size.</summary>
    public const int Max = 4096;

    /// <summary>Whether <paramref name="blockSize"/> is a power of two in [32, 4096].</summary>
    public static bool IsValid(int blockSize) => blockSize is >= Min and <= Max && BitOperations.IsPow2(blockSize);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming <paramref name="paramName"/> unless the block size is valid.</summary>
    /// <param name="blockSize">The block size to check.</param>
    /// <param name="paramName">The parameter or option to name in the error.</param>
    public static void Validate(int blockSize, string paramName = "blockSize")
    {
        if (!IsValid(blockSize))
        {
            throw new ArgumentOutOfRangeException(paramName, blockSize, $"The NF4 block size must be a power of two from {Min} to {Max}; got {blockSize}.");
        }
    }

    /// <summary>Number of blocks (absmax values) for <paramref name="count"/> elements.</summary>
    public static long BlockCount(long count, int blockSize) => (count + blockSize - 1) / blockSize;

    /// <summary>Bytes of packed 4-bit data for <paramref name="count"/> elements (two per byte, odd counts padded).</summary>
    public static long PackedLength(long count) => (count + 1) / 2;
}
