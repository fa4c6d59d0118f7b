using TorchSharp;

namespace LoQT.Models.Llama;

/// <summary>What a linear layer of the model is: where it sits, its size, and the dtype and device it computes in.</summary>
/// <param name="Name">
/// The module path as in Hugging Face checkpoints, without <c>.weight</c>: <c>model.layers.3.self_attn.q_proj</c>,
/// <c>model.layers.3.mlp.down_proj</c>, <c>lm_head</c>.
/// </param>
/// <param name="InFeatures">Input width (columns of the weight).</param>
/// <param name="OutFeatures">Output width (rows of the weight).</param>
/// <param name="HasBias">Whether the layer has a bias (<c>attention_bias</c> / <c>mlp_bias</c>).</param>
/// <param name="ComputeDType">The dtype activations flow in (F32 or BF16); the layer's output must have it.</param>
/// <param name="Device">Where the layer must live and compute.</param>
public sealed record LinearLayerSpec(
    string Name,
    long InFeatures,
    long OutFeatures,
    bool HasBias,
    torch.ScalarType ComputeDType,
    torch.Device Device)
{
    /// <summary>The last part of <see cref="Name"/>: <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>, <c>gate_proj</c>, <c>up_proj</c>, <c>down_proj</c> or <c>lm_head</c>.</summary>
    public string Kind => Name[(Name.LastIndexOf('.') + 1)..];

    /// <summary>The decoder layer the projection belongs to, or <c>null</c> for <c>lm_head</c>.</summary>
    public int? LayerIndex
    {
        get
        {
            const string prefix = "model.layers.";
            if (!Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return null;
            }

            var end = Name.IndexOf('.', prefix.Length);
            return int.Parse(Name.AsSpan(prefix.Length, end - prefix.Length), System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>The weight shape, <c>[OutFeatures, InFeatures]</c>.</summary>
    public long[] WeightShape => [OutFeatures, InFeatures];
}
