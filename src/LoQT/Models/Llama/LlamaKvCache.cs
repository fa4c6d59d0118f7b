using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// Keys and values of the tokens seen so far, per decoder layer (after RoPE, before the grouped-query repeat),
/// so generation feeds only the new tokens through the model. Pass the same cache to successive
/// <see cref="LlamaForCausalLM.Forward"/> calls; dispose it when done.
/// </summary>
public sealed class LlamaKvCache : IDisposable
{
    private readonly Tensor?[] _keys;
    private readonly Tensor?[] _values;

    /// <summary>An empty cache for a model with <paramref name="layers"/> decoder layers.</summary>
    /// <param name="layers">The model's <see cref="LlamaConfig.NumHiddenLayers"/>.</param>
    public LlamaKvCache(int layers)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
    }

    /// <summary>Tokens cached so far (the position the next token gets).</summary>
    public long Length => _keys[^1]?.shape[2] ?? 0;

    /// <summary>Decoder layers the cache holds.</summary>
    public int LayerCount => _keys.Length;

    /// <summary>Appends a layer's new keys and values (<c>[B, kv_heads, T, head_dim]</c>) and returns all of them so far.</summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        var oldKeys = _keys[layer];
        var oldValues = _values[layer];
        var newKeys = oldKeys is null ? keys.detach() : torch.cat([oldKeys, keys.detach()], 2);
        var newValues = oldValues is null ? values.detach() : torch.cat([oldValues, values.detach()], 2);
        _keys[layer] = newKeys.DetachFromDisposeScope();
        _values[layer] = newValues.DetachFromDisposeScope();
        oldKeys?.Dispose();
        oldValues?.Dispose();
        return (_keys[layer]!.alias(), _values[layer]!.alias());
    }

    /// <summary>The length before this forward call: layers before <paramref name="layer"/> have already appended.</summary>
    internal long PastLength(int layer) => _keys[layer]?.shape[2] ?? 0;

    /// <summary>Frees the cached tensors.</summary>
    public void Dispose()
    {
        for (var i = 0; i < _keys.Length; i++)
        {
            _keys[i]?.Dispose();
            _values[i]?.Dispose();
            _keys[i] = null;
            _values[i] = null;
        }
    }
}
