using LoQT.Quantization;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>How <see cref="LlamaForCausalLM.Load"/> and <see cref="LlamaForCausalLM.CreateRandom"/> build a model.</summary>
public sealed record LlamaLoadOptions
{
    /// <summary>The linear layers quantized by default: every projection inside the decoder layers (not <c>lm_head</c>).</summary>
    public static IReadOnlyList<string> AllProjections { get; } =
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>The dtype of activations, embeddings, norms and dense weights: F32 or BF16 (F16 also runs).</summary>
    public ScalarType ComputeDType { get; init; } = ScalarType.Float32;

    /// <summary>Where the model lives; <c>null</c> for the CPU.</summary>
    public Device? Device { get; init; }

    /// <summary>Makes the targeted linear layers (see <see cref="TargetModules"/>); <c>null</c> for frozen <see cref="DenseLinearFactory"/> layers.</summary>
    public ILinearFactory? LinearFactory { get; init; }

    /// <summary>
    /// Which linear layers <see cref="LinearFactory"/> makes, PEFT-style: a layer is targeted when its name
    /// (<c>model.layers.0.self_attn.q_proj</c>) equals an entry or ends with <c>.</c> + the entry. Default: <see cref="AllProjections"/>.
    /// </summary>
    public IReadOnlyList<string> TargetModules { get; init; } = AllProjections;

    /// <summary>
    /// Makes the other linear layers (<c>lm_head</c> unless targeted, and any projection left out of
    /// <see cref="TargetModules"/>); <c>null</c> for <see cref="DenseLinearFactory"/> layers that are trainable when
    /// <see cref="TrainUntargeted"/> is set.
    /// </summary>
    public ILinearFactory? UntargetedLinearFactory { get; init; }

    /// <summary>
    /// Whether the embedding, the norms and (with the default <see cref="UntargetedLinearFactory"/>) the untargeted linear
    /// layers require gradients. Off by default: evaluation and generation need none.
    /// </summary>
    public bool TrainUntargeted { get; init; }

    /// <summary>Options for frozen NF4 weights in every targeted projection (bitsandbytes' defaults: blocks of 64, no double quantization).</summary>
    /// <param name="computeDType">Activation dtype.</param>
    /// <param name="doubleQuant">Also quantize the absmax values.</param>
    public static LlamaLoadOptions Nf4(ScalarType computeDType = ScalarType.Float32, bool doubleQuant = false) => new()
    {
        ComputeDType = computeDType,
        LinearFactory = new Nf4LinearFactory(Nf4BlockSizes.Default, doubleQuant),
    };

    /// <summary>Whether the linear layer <paramref name="name"/> is one of <see cref="TargetModules"/>.</summary>
    /// <param name="name">A module path such as <c>model.layers.0.mlp.up_proj</c>.</param>
    public bool IsTargeted(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return TargetModules.Any(t => name == t || name.EndsWith("." + t, StringComparison.Ordinal));
    }
}
