using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>The decoder stack (transformers' <c>LlamaModel</c>): embedding, layers, final norm.</summary>
internal sealed class LlamaModel : nn.Module
{
    private readonly LlamaEmbedding _embedTokens;
    private readonly ModuleList<LlamaDecoderLayer> _layers;
    private readonly LlamaRmsNorm _norm;
    private readonly LlamaRotaryEmbedding _rotary;
    private bool _disposed;

    public LlamaModel(string name, LlamaBuildContext context)
        : base(name)
    {
        var config = context.Config;
        _embedTokens = context.Embedding(name + ".embed_tokens");
        _layers = new ModuleList<LlamaDecoderLayer>();
        for (var i = 0; i < config.NumHiddenLayers; i++)
        {
            _layers.Add(new LlamaDecoderLayer($"{name}.layers.{i}", i, context));
        }

        _norm = context.Norm(name + ".norm");
        _rotary = new LlamaRotaryEmbedding(config, context.Device);
        register_module("embed_tokens", _embedTokens);
        register_module("layers", _layers);
        register_module("norm", _norm);
    }

    public LlamaEmbedding EmbedTokens => _embedTokens;

    /// <summary>Final hidden states <c>[B, T, hidden]</c> in the compute dtype.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, LlamaKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var batch = inputIds.shape[0];
        var length = inputIds.shape[1];
        var past = cache?.Length ?? 0;
        var positions = positionIds ?? torch.arange(past, past + length, ScalarType.Int64, inputIds.device).unsqueeze(0).expand(batch, length);
        var hidden = _embedTokens.call(inputIds);
        var (cos, sin) = _rotary.Compute(positions, hidden.dtype);
        var mask = CausalMask(batch, length, past, attentionMask, inputIds.device);
        foreach (var layer in _layers)
        {
            hidden = layer.Forward(hidden, cos, sin, mask, cache);
        }

        return _norm.call(hidden).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            _rotary.Dispose();
        }

        base.Dispose(disposing);
    }

    // Additive F32 mask [B or 1, 1, T, past + T]: a query at position past + i sees keys 0..past + i that the attention
    // mask marks as real tokens. Blocked entries get F32's lowest value rather than -inf, as transformers does, so a
    // row with nothing visible (a padding query) stays finite instead of turning into NaN.
    private static Tensor? CausalMask(long batch, long length, long past, Tensor? attentionMask, Device device)
    {
        var total = past + length;
        if (attentionMask is null && length == 1)
        {
            return null;
        }

        var queries = torch.arange(past, total, ScalarType.Int64, device).unsqueeze(1);
        var keys = torch.arange(0, total, ScalarType.Int64, device).unsqueeze(0);
        var allowed = keys.le(queries).unsqueeze(0);
        if (attentionMask is not null)
        {
            if (attentionMask.ndim != 2 || attentionMask.shape[0] != batch || attentionMask.shape[1] != total)
            {
                throw new ArgumentException(
                    $"attention_mask must be [{batch}, {total}] (batch × cached + new tokens), got [{string.Join(", ", attentionMask.shape)}]");
            }

            allowed = allowed.logical_and(attentionMask.to(device).ne(0).unsqueeze(1));
        }

        var zero = torch.zeros(1, ScalarType.Float32, device);
        var blocked = torch.full(1, float.MinValue, ScalarType.Float32, device);
        return torch.where(allowed, zero, blocked).unsqueeze(1);
    }
}
