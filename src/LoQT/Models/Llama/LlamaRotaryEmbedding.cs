using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// Rotary position embedding as transformers computes it for Llama: inverse frequencies
/// <c>1 / θ^(2i/d)</c> in F32 (rescaled for <c>llama3</c> or <c>linear</c> scaling), angles = position × frequency,
/// <c>cos</c>/<c>sin</c> of <c>cat(angles, angles)</c>, applied with <c>rotate_half</c>.
/// </summary>
internal sealed class LlamaRotaryEmbedding : IDisposable
{
    private readonly Tensor _inverseFrequencies;

    public LlamaRotaryEmbedding(LlamaConfig config, Device device)
    {
        using var scope = NewDisposeScope();
        var dim = config.HeadDim;
        var exponents = torch.arange(0, dim, 2, ScalarType.Int64).to(ScalarType.Float32) / dim;
        var inverse = torch.tensor((float)config.RopeTheta, ScalarType.Float32).pow(exponents).reciprocal();
        inverse = config.RopeScaling switch
        {
            null => inverse,
            { Type: RopeScaling.Linear } s => inverse / s.Factor,
            { Type: RopeScaling.Llama3 } s => Llama3(inverse, s),
            var s => throw new NotSupportedException($"rope_scaling type '{s.Type}' is not supported; supported: {string.Join(", ", RopeScaling.SupportedTypes)}"),
        };
        _inverseFrequencies = inverse.to(device).DetachFromDisposeScope();
    }

    /// <summary>Inverse frequencies, F32 <c>[head_dim / 2]</c>.</summary>
    public Tensor InverseFrequencies => _inverseFrequencies;

    /// <summary><c>cos</c> and <c>sin</c>, <c>[B, T, head_dim]</c> in <paramref name="dtype"/>, for positions <c>[B, T]</c>.</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var angles = positionIds.to(ScalarType.Float32).unsqueeze(-1) * _inverseFrequencies;
        var embedding = torch.cat([angles, angles], -1);
        var cos = embedding.cos().to(dtype);
        var sin = embedding.sin().to(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary><c>x·cos + rotate_half(x)·sin</c> for <c>x</c> of <c>[B, heads, T, head_dim]</c> and cos/sin of <c>[B, T, head_dim]</c>.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var c = cos.unsqueeze(1);
        var s = sin.unsqueeze(1);
        return ((x * c) + (RotateHalf(x) * s)).MoveToOuterDisposeScope();
    }

    public void Dispose() => _inverseFrequencies.Dispose();

    private static Tensor RotateHalf(Tensor x)
    {
        var half = x.shape[^1] / 2;
        var first = x.narrow(-1, 0, half);
        var second = x.narrow(-1, half, half);
        return torch.cat([second.neg(), first], -1);
    }

    // Llama 3.1: long wavelengths are divided by the factor, short ones kept, the band between interpolated smoothly.
    private static Tensor Llama3(Tensor inverse, RopeScaling s)
    {
        var oldContext = (double)s.OriginalMaxPositionEmbeddings;
        var lowFrequencyWavelength = oldContext / s.LowFreqFactor;
        var highFrequencyWavelength = oldContext / s.HighFreqFactor;
        var wavelength = (2 * Math.PI) / inverse;
        var scaled = torch.where(wavelength > lowFrequencyWavelength, inverse / s.Factor, inverse);
        var smooth = ((oldContext / wavelength) - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        var smoothed = (((1 - smooth) * scaled) / s.Factor) + (smooth * scaled);
        var isMedium = (wavelength >= highFrequencyWavelength).logical_and(wavelength <= lowFrequencyWavelength);
        return torch.where(isMedium, smoothed, scaled);
    }
}
