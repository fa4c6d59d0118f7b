using LoQT.SafeTensors;
using LoQT.Tests.Support;
using static TorchSharp.torch;

namespace LoQT.Tests.Loqt;

/// <summary>Real weights and real gradients of single tiny-llama layers (fp32), from ../shared/fixtures/tiny-llama.</summary>
internal static class TinyLlamaTensors
{
    /// <summary>A Left-side layer ([172, 64]: in ≤ out) that has a golden gradient.</summary>
    public const string UpProj = "model.layers.1.mlp.up_proj";

    /// <summary>A Right-side layer ([64, 172]: in &gt; out) that has a golden gradient.</summary>
    public const string DownProj = "model.layers.0.mlp.down_proj";

    public static string Directory => TestPaths.Fixture("tiny-llama");

    /// <summary>W of <paramref name="layer"/> as stored in model.safetensors (a new fp32 tensor).</summary>
    public static Tensor Weight(string layer)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Directory, "model.safetensors"));
        return file.ReadTensor(layer + ".weight", ScalarType.Float32);
    }

    /// <summary>∂loss/∂W of <paramref name="layer"/> on the golden batch (made by HF transformers; a new fp32 tensor).</summary>
    public static Tensor Gradient(string layer)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Directory, "golden.safetensors"));
        return file.ReadTensor("grad." + layer + ".weight", ScalarType.Float32);
    }
}
