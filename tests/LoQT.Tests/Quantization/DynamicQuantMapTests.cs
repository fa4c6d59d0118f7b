using System.Runtime.InteropServices;
using LoQT.Quantization;
using TorchSharp;

namespace LoQT.Tests.Quantization;

/// <summary>The 8-bit dynamic maps and blockwise 8-bit quantization with them.</summary>
public class DynamicQuantMapTests
{
    [Fact]
    public void Signed_Has256AscendingValuesFromMinusOneToOne()
    {
        var map = DynamicQuantMap.Signed;

        Assert.Equal(256, map.Length);
        Assert.True(map.Zip(map.Skip(1)).All(p => p.First < p.Second));
        Assert.Equal(-0.99296874f, map[0], 0f);
        Assert.Equal(1f, map[255]);
        Assert.Contains(0f, map);
    }

    [Fact]
    public void Unsigned_HoldsTheMeansOfEachDecade()
    {
        var map = DynamicQuantMap.Unsigned;

        Assert.Equal(256, map.Length);
        Assert.True(map.Zip(map.Skip(1)).All(p => p.First < p.Second));
        Assert.Equal(0f, map[0]);
        Assert.Equal(1f, map[255]);

        // Decade i (scale 10^(i-6)) holds the 2^(i+1) midpoints of 2^(i+1) equal steps from 0.1 to 1, computed here in
        // double: the float32 map agrees to float32 rounding of a few operations (relative 1e-6).
        var expected = new List<double> { 0, 1 };
        for (var i = 0; i < 7; i++)
        {
            var steps = 1 << (i + 1);
            for (var j = 0; j < steps; j++)
            {
                expected.Add(Math.Pow(10, i - 6) * (0.1 + (0.9 * (j + 0.5) / steps)));
            }
        }

        expected.Sort();
        for (var k = 0; k < 256; k++)
        {
            Assert.True(Math.Abs(map[k] - expected[k]) <= 1e-6 * expected[k], $"entry {k}: {map[k]} vs {expected[k]}");
        }
    }

    [Fact]
    public void Signed_ReturnsACopyCallersCannotUseToChangeTheMap()
    {
        var copy = DynamicQuantMap.Signed;
        copy[0] = 42f;

        Assert.NotEqual(42f, DynamicQuantMap.Signed[0]);
    }

    [Theory]
    [InlineData(true, 256, 256 * 9 + 77)]
    [InlineData(false, 256, 256 * 9 + 77)]
    [InlineData(true, 4096, (4096 * 2) + 5)]
    [InlineData(true, 64, 1)]
    public void QuantizeBlockwise_ChoosesTheNearestMapEntryOfEachScaledValue(bool signed, int blockSize, int count)
    {
        var map = signed ? DynamicQuantMap.Signed : DynamicQuantMap.Unsigned;
        var input = Nf4CpuTests.RandomNormal(count, seed: count).Select(v => signed ? v : v * v).ToArray();
        var codes = new byte[count];
        var absmax = new float[DynamicQuantMap.BlockCount(count, blockSize)];

        DynamicQuantMap.QuantizeBlockwise(input, map, codes, absmax, blockSize);

        for (var block = 0; block < absmax.Length; block++)
        {
            var values = input.AsSpan(block * blockSize, Math.Min(blockSize, count - (block * blockSize)));
            var max = 0f;
            foreach (var v in values)
            {
                max = Math.Max(max, Math.Abs(v));
            }

            Assert.Equal(max, absmax[block]);
        }

        for (var i = 0; i < count; i++)
        {
            var block = i / blockSize;
            var scaled = (double)input[i] / absmax[block];
            var best = 0;
            for (var k = 1; k < 256; k++)
            {
                if (Math.Abs(map[k] - scaled) < Math.Abs(map[best] - scaled))
                {
                    best = k;
                }
            }

            // Only a value within float32 rounding of the midpoint between two entries may go either way.
            var chosen = codes[i];
            Assert.True(chosen == best || Math.Abs(Math.Abs(map[chosen] - scaled) - Math.Abs(map[best] - scaled)) < 1e-7,
                $"element {i}: scaled {scaled} got code {chosen} ({map[chosen]}), nearest is {best} ({map[best]})");
        }
    }

    public static TheoryData<bool, bool> SignednessAndPath
    {
        get
        {
            var data = new TheoryData<bool, bool>();
            foreach (var signed in new[] { true, false })
            {
                data.Add(signed, false);
                if (Blockwise8BitKernel.VectorAvailable)
                {
                    data.Add(signed, true);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(SignednessAndPath))]
    public void QuantizeBlockwise_MatchesTheTorchOpsPathExactly(bool signed, bool vector)
    {
        var map = signed ? DynamicQuantMap.Signed : DynamicQuantMap.Unsigned;
        const int count = (256 * 300) + 100;
        var input = Nf4CpuTests.RandomNormal(count, seed: 21).Select(v => signed ? v : Math.Abs(v)).ToArray();
        input[7] = float.NaN; // its block's codes all become 255, as in torch
        var codes = new byte[count];
        var absmax = new float[DynamicQuantMap.BlockCount(count, 256)];
        DynamicQuantMap.QuantizeBlockwise(input, map, codes, absmax, 256, vector);

        using var tensor = torch.tensor(input);
        var (expectedCodes, expectedAbsmax) = Nf4TorchOps.QuantizeBlockwise8(tensor, map, 256);
        using (expectedCodes)
        using (expectedAbsmax)
        {
            Assert.Equal(expectedCodes.bytes.ToArray(), codes);
            Assert.Equal(MemoryMarshal.Cast<byte, float>(expectedAbsmax.bytes).ToArray(), absmax);
        }
    }

    [Fact]
    public void QuantizeBlockwise_StoresTheClampedDivisorForAnAllZeroShortLastBlock()
    {
        var input = new float[256 + 10];
        input[3] = 2f;
        var codes = new byte[input.Length];
        var absmax = new float[2];

        DynamicQuantMap.QuantizeBlockwise(input, DynamicQuantMap.SignedValues, codes, absmax, 256);

        Assert.Equal(2f, absmax[0]);
        Assert.Equal(DynamicQuantMap.MinAbsmax, absmax[1]);
        var zeroCode = Array.IndexOf(DynamicQuantMap.Signed, 0f);
        Assert.All(codes.Skip(256), c => Assert.Equal(zeroCode, c));
    }

    [Theory]
    [MemberData(nameof(SignednessAndPath))]
    public void DequantizeBlockwise_ScalesEachMapEntryByItsBlockAbsmax(bool signed, bool vector)
    {
        var map = signed ? DynamicQuantMap.Signed : DynamicQuantMap.Unsigned;
        const int blockSize = 32;
        var codes = Enumerable.Range(0, 256 + 21).Select(i => (byte)((i * 37) % 256)).ToArray();
        var absmax = Enumerable.Range(0, (int)DynamicQuantMap.BlockCount(codes.Length, blockSize)).Select(b => 0.5f + b).ToArray();
        var output = new float[codes.Length];

        DynamicQuantMap.DequantizeBlockwise(codes, absmax, map, output, blockSize, vector);

        Assert.Equal(codes.Select((c, i) => map[c] * absmax[i / blockSize]), output);
    }

    [Fact]
    public void QuantizeBlockwise_RejectsAMapThatIsNot256Long()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            DynamicQuantMap.QuantizeBlockwise(new float[4], new float[16], new byte[4], new float[1], 256));
        Assert.Equal("map", error.ParamName);
    }

    [Fact]
    public void QuantizeBlockwise_RejectsAbsmaxOfTheWrongLength()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            DynamicQuantMap.QuantizeBlockwise(new float[600], DynamicQuantMap.SignedValues, new byte[600], new float[2], 256));
        Assert.Equal("absmax", error.ParamName);
    }
}
