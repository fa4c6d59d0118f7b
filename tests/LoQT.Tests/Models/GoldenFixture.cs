using LoQT.SafeTensors;
using LoQT.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Models;

/// <summary>The reference outputs in a fixture checkpoint's <c>golden.safetensors</c> (made by transformers, see fixtures/README.md).</summary>
internal sealed class GoldenFixture : IDisposable
{
    public const string GradPrefix = "grad.";

    private readonly SafeTensorsFile _file;

    public GoldenFixture(string name)
    {
        Directory = TestPaths.Fixture(name);
        _file = SafeTensorsFile.Open(Path.Combine(Directory, "golden.safetensors"));
        InputIds = _file.ReadTensor("input_ids");
        Logits = _file.ReadTensor("logits");
        using var loss = _file.ReadTensor("loss");
        Loss = loss.item<float>();
    }

    /// <summary>The checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>I64 [2, 24].</summary>
    public Tensor InputIds { get; }

    /// <summary>F32 [2, 24, vocab] from an F32 forward.</summary>
    public Tensor Logits { get; }

    /// <summary>Mean next-token cross-entropy over positions 0..22 predicting 1..23.</summary>
    public float Loss { get; }

    /// <summary>The parameter names that have a reference gradient.</summary>
    public IEnumerable<string> GradientNames =>
        _file.Tensors.Select(t => t.Name).Where(n => n.StartsWith(GradPrefix, StringComparison.Ordinal)).Select(n => n[GradPrefix.Length..]);

    public Tensor Gradient(string parameter) => _file.ReadTensor(GradPrefix + parameter);

    /// <summary>max |actual − expected| ÷ max |expected|: a relative error that ignores where single values sit near zero.</summary>
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var a = actual.detach().to(ScalarType.Float64, CPU);
        var e = expected.detach().to(ScalarType.Float64, CPU);
        return (a - e).abs().max().item<double>() / e.abs().max().item<double>();
    }

    public void Dispose()
    {
        InputIds.Dispose();
        Logits.Dispose();
        _file.Dispose();
    }
}
