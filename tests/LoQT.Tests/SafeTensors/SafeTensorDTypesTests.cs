using LoQT.SafeTensors;
using TorchSharp;

namespace LoQT.Tests.SafeTensors;

public class SafeTensorDTypesTests
{
    public static TheoryData<SafeTensorDType> AllDTypes() => new(SafeTensorDTypes.All);

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void ElementSize_MatchesTorchElementSize(SafeTensorDType dtype)
    {
        using var tensor = torch.empty(1, dtype.ToScalarType());
        Assert.Equal(tensor.ElementSize, dtype.ElementSize());
    }

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void Parse_ReadsTheHeaderName(SafeTensorDType dtype) =>
        Assert.Equal(dtype, SafeTensorDTypes.Parse(dtype.ToHeaderName()));

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void FromScalarType_InvertsToScalarType(SafeTensorDType dtype) =>
        Assert.Equal(dtype, SafeTensorDTypes.FromScalarType(dtype.ToScalarType()));

    [Fact]
    public void HeaderNames_AreTheFormatsSpelling() =>
        Assert.Equal(
            ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"],
            SafeTensorDTypes.All.Select(d => d.ToHeaderName()));

    [Fact]
    public void Parse_RejectsUnknownNameAndNamesIt()
    {
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorDTypes.Parse("F8_E4M3"));
        Assert.Contains("F8_E4M3", error.Message);
    }

    [Fact]
    public void Parse_IsCaseSensitive() =>
        Assert.Throws<InvalidDataException>(() => SafeTensorDTypes.Parse("f32"));

    [Fact]
    public void FromScalarType_RejectsComplex() =>
        Assert.Throws<ArgumentException>(() => SafeTensorDTypes.FromScalarType(torch.ScalarType.ComplexFloat32));
}
