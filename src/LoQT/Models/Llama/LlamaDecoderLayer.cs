using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>One pre-norm decoder block: <c>x + attn(norm(x))</c>, then <c>x + mlp(norm(x))</c>.</summary>
internal sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaRmsNorm _inputNorm;
    private readonly LlamaAttention _attention;
    private readonly LlamaRmsNorm _postAttentionNorm;
    private readonly LlamaMlp _mlp;

    public LlamaDecoderLayer(string name, int layer, LlamaBuildContext context)
        : base(name)
    {
        // Built in the order of the checkpoint's names within a layer, so a streaming load reads each file front to back.
        _inputNorm = context.Norm(name + ".input_layernorm");
        _mlp = new LlamaMlp(name + ".mlp", context);
        _postAttentionNorm = context.Norm(name + ".post_attention_layernorm");
        _attention = new LlamaAttention(name + ".self_attn", layer, context);
        register_module("self_attn", _attention);
        register_module("mlp", _mlp);
        register_module("input_layernorm", _inputNorm);
        register_module("post_attention_layernorm", _postAttentionNorm);
    }

    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, Tensor? mask, LlamaKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var attended = hidden + _attention.Forward(_inputNorm.call(hidden), cos, sin, mask, cache);
        var output = attended + _mlp.call(_postAttentionNorm.call(attended));
        return output.MoveToOuterDisposeScope();
    }
}
