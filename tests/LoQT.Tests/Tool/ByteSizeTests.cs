using LoQT.Tool;

namespace LoQT.Tests.Tool;

public class ByteSizeTests
{
    [Theory]
    [InlineData("24GiB", 24L << 30)]
    [InlineData("16GB", 16_000_000_000L)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("64 kib", 64L << 10)]
    [InlineData("1048576", 1L << 20)]
    [InlineData("100B", 100L)]
    public void Parse_ReadsANumberAndAUnit(string text, long expected)
    {
        Assert.Equal(expected, ByteSize.Parse(text));
    }

    [Theory]
    [InlineData("24XB")]
    [InlineData("GiB")]
    [InlineData("")]
    [InlineData("-1GiB")]
    [InlineData("0GiB")]
    [InlineData("1,5GiB")]
    [InlineData("twelve")]
    public void Parse_RejectsWhatIsNotAPositiveSize(string text)
    {
        var error = Assert.Throws<FormatException>(() => ByteSize.Parse(text));

        Assert.Contains($"'{text}'", error.Message);
        Assert.Contains("24GiB", error.Message);
    }
}
