namespace LoQT.Models.Llama;

/// <summary>What a tensor of a Llama checkpoint is for.</summary>
internal enum LlamaTensorRole
{
    Embedding,
    Norm,
    LinearWeight,
    LinearBias,
}

/// <summary>One tensor a Llama checkpoint must hold: its Hugging Face name, shape and role.</summary>
internal sealed record LlamaTensorSpec(string Name, long[] Shape, LlamaTensorRole Role)
{
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>The tensors of a Hugging Face <c>LlamaForCausalLM</c> checkpoint for a config, with their shapes.</summary>
internal static class LlamaWeightLayout
{
    public static IReadOnlyList<LlamaTensorSpec> Expected(LlamaConfig config)
    {
        long hidden = config.HiddenSize;
        long intermediate = config.IntermediateSize;
        long queries = (long)config.NumAttentionHeads * config.HeadDim;
        long keyValues = (long)config.NumKeyValueHeads * config.HeadDim;
        var tensors = new List<LlamaTensorSpec>
        {
            new("model.embed_tokens.weight", [config.VocabSize, hidden], LlamaTensorRole.Embedding),
        };

        void Linear(string name, long inFeatures, long outFeatures, bool bias)
        {
            tensors.Add(new(name + ".weight", [outFeatures, inFeatures], LlamaTensorRole.LinearWeight));
            if (bias)
            {
                tensors.Add(new(name + ".bias", [outFeatures], LlamaTensorRole.LinearBias));
            }
        }

        for (var i = 0; i < config.NumHiddenLayers; i++)
        {
            var layer = $"model.layers.{i}";
            tensors.Add(new(layer + ".input_layernorm.weight", [hidden], LlamaTensorRole.Norm));
            Linear(layer + ".mlp.gate_proj", hidden, intermediate, config.MlpBias);
            Linear(layer + ".mlp.up_proj", hidden, intermediate, config.MlpBias);
            Linear(layer + ".mlp.down_proj", intermediate, hidden, config.MlpBias);
            tensors.Add(new(layer + ".post_attention_layernorm.weight", [hidden], LlamaTensorRole.Norm));
            Linear(layer + ".self_attn.q_proj", hidden, queries, config.AttentionBias);
            Linear(layer + ".self_attn.k_proj", hidden, keyValues, config.AttentionBias);
            Linear(layer + ".self_attn.v_proj", hidden, keyValues, config.AttentionBias);
            Linear(layer + ".self_attn.o_proj", queries, hidden, config.AttentionBias);
        }

        tensors.Add(new("model.norm.weight", [hidden], LlamaTensorRole.Norm));
        if (!config.TieWordEmbeddings)
        {
            Linear("lm_head", hidden, config.VocabSize, bias: false);
        }

        return tensors;
    }

    /// <summary>Tensors transformers ignores when loading a Llama checkpoint (rotary buffers old versions saved).</summary>
    public static bool IsIgnorable(string name, LlamaConfig config) =>
        name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)
        || (config.TieWordEmbeddings && name == "lm_head.weight");
}
