using System.Buffers.Binary;
using LoQT.Tests.SafeTensors;
using LoQT.Tool.Rendering;

namespace LoQT.Tests.Tool;

/// <summary>The benchmark and demo charts: real PNG files of the stated size, and clear errors for data that cannot be drawn.</summary>
public sealed class PngChartsTests
{
    [Fact]
    public void SaveLines_WritesAPngOfTheDefaultSize()
    {
        using var folder = new ScratchFolder();
        var path = folder.File("loss.png");

        PngCharts.SaveLines(path, "Loss", "step", "loss",
            [new ChartSeries("full", [1, 2, 3], [5, 4, 3.5]), new ChartSeries("loqt", [1, 2, 3], [5.1, 4.2, 3.6])], logY: true);

        Assert.Equal((PngCharts.Width, PngCharts.Height), PngSize(path));
        Assert.Equal(["loss.png"], folder.FileNames());
    }

    [Fact]
    public void SaveStackedBars_WritesAPngOfTheDefaultSize()
    {
        using var folder = new ScratchFolder();
        var path = folder.File("memory.png");

        PngCharts.SaveStackedBars(path, "Memory", "GiB", ["full", "loqt"],
            [new ChartStack("weights", [4, 1]), new ChartStack("optimizer", [8, 0.5])]);

        Assert.Equal((PngCharts.Width, PngCharts.Height), PngSize(path));
    }

    [Fact]
    public void SaveLines_RejectsASeriesWhoseXAndYCountsDiffer()
    {
        using var folder = new ScratchFolder();

        var error = Assert.Throws<ArgumentException>(() =>
            PngCharts.SaveLines(folder.File("bad.png"), "t", "x", "y", [new ChartSeries("loqt", [1, 2], [3])]));

        Assert.Contains("'loqt'", error.Message);
        Assert.Empty(folder.FileNames());
    }

    [Fact]
    public void SaveStackedBars_RejectsAPartWithTheWrongNumberOfValues()
    {
        using var folder = new ScratchFolder();

        var error = Assert.Throws<ArgumentException>(() =>
            PngCharts.SaveStackedBars(folder.File("bad.png"), "t", "GiB", ["a", "b"], [new ChartStack("weights", [1])]));

        Assert.Contains("'weights'", error.Message);
        Assert.Empty(folder.FileNames());
    }

    /// <summary>Width and height from the IHDR chunk, after checking the PNG signature.</summary>
    private static (int Width, int Height) PngSize(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        Assert.Equal("IHDR"u8.ToArray(), bytes[12..16]);
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }
}
