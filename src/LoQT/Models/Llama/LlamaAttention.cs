using LoQT.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// Multi-head attention with grouped-query key/value heads, RoPE, and softmax in F32 over scores plus an additive
/// mask, as transformers' eager <c>LlamaAttention</c>.
/// </summary>
internal sealed class LlamaAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> _q;
    private readonly nn.Module<Tensor, Tensor> _k;
    private readonly nn.Module<Tensor, Tensor> _v;
    private readonly nn.Module<Tensor, Tensor> _o;
    private readonly int _layer;
    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;
    private readonly double _scale;

    public LlamaAttention(string name, int layer, LlamaBuildContext context)
        : base(name)
    {
        var config = context.Config;
        _layer = layer;
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        _scale = 1.0 / Math.Sqrt(_headDim);
        _q = context.Linear(name + ".q_proj", config.HiddenSize, (long)_heads * _headDim, config.AttentionBias);
        _k = context.Linear(name + ".k_proj", config.HiddenSize, (long)_kvHeads * _headDim, config.AttentionBias);
        _v = context.Linear(name + ".v_proj", config.HiddenSize, (long)_kvHeads * _headDim, config.AttentionBias);
        _o = context.Linear(name + ".o_proj", (long)_heads * _headDim, config.HiddenSize, config.AttentionBias);
        register_module("q_proj", _q);
        register_module("k_proj", _k);
        register_module("v_proj", _v);
        register_module("o_proj", _o);
    }

    /// <param name="hidden"><c>[B, T, hidden]</c>.</param>
    /// <param name="cos">RoPE cos, <c>[B, T, head_dim]</c>.</param>
    /// <param name="sin">RoPE sin, <c>[B, T, head_dim]</c>.</param>
    /// <param name="mask">Additive F32 mask broadcastable to <c>[B, heads, T, S]</c> (0 or a large negative), or null for none.</param>
    /// <param name="cache">Keys/values of earlier tokens, extended with this call's; or null.</param>
    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, Tensor? mask, LlamaKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var batch = hidden.shape[0];
        var length = hidden.shape[1];
        var q = _q.call(hidden).view(batch, length, _heads, _headDim).transpose(1, 2);
        var k = _k.call(hidden).view(batch, length, _kvHeads, _headDim).transpose(1, 2);
        var v = _v.call(hidden).view(batch, length, _kvHeads, _headDim).transpose(1, 2);
        q = LlamaRotaryEmbedding.Apply(q, cos, sin);
        k = LlamaRotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null)
        {
            (k, v) = cache.Append(_layer, k, v);
        }

        k = RepeatKeyValue(k);
        v = RepeatKeyValue(v);
        var scores = Gemm.MatMul(q, k.transpose(2, 3)) * _scale;
        var scores32 = scores.to(ScalarType.Float32);
        if (mask is not null)
        {
            scores32 = scores32 + mask;
        }

        var probabilities = scores32.softmax(-1).to(q.dtype);
        var output = Gemm.MatMul(probabilities, v).transpose(1, 2).contiguous().reshape(batch, length, (long)_heads * _headDim);
        return _o.call(output).MoveToOuterDisposeScope();
    }

    // [B, kv, S, D] -> [B, kv * groups, S, D], each key/value head serving `groups` consecutive query heads.
    private Tensor RepeatKeyValue(Tensor x)
    {
        var groups = _heads / _kvHeads;
        if (groups == 1)
        {
            return x;
        }

        var shape = x.shape;
        return x.unsqueeze(2).expand(shape[0], shape[1], groups, shape[2], shape[3]).reshape(shape[0], shape[1] * groups, shape[2], shape[3]);
    }
}
