using LoQT.Quantization;

namespace LoQT.Tests.Quantization;

/// <summary>Doubles written as Python's repr writes them (the quant-state JSON must match bitsandbytes byte for byte).</summary>
public class PythonFloatTests
{
    [Theory]
    [InlineData(0.1, "0.1")]
    [InlineData(1.0, "1.0")]
    [InlineData(-2.5, "-2.5")]
    [InlineData(0.0, "0.0")]
    [InlineData(123456789.0, "123456789.0")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00001, "1e-05")]
    [InlineData(0.00001234, "1.234e-05")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1.5e16, "1.5e+16")]
    [InlineData(9999999999999998.0, "9999999999999998.0")]
    [InlineData(1.2345678901234568e+17, "1.2345678901234568e+17")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(0.049559276551008224, "0.049559276551008224")]
    public void Repr_WritesWhatPythonWrites(double value, string expected)
    {
        Assert.Equal(expected, PythonFloat.Repr(value));
    }

    [Fact]
    public void Repr_OfAFloat32Value_RoundTripsToTheSameFloat32()
    {
        var offset = 0.0123456789f;
        Assert.Equal(offset, (float)double.Parse(PythonFloat.Repr(offset), System.Globalization.CultureInfo.InvariantCulture));
    }
}
