using LoQT.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// A Llama causal language model with Hugging Face transformers' <c>LlamaForCausalLM</c> semantics and parameter names
/// (<c>model.embed_tokens.weight</c>, <c>model.layers.{i}.self_attn.q_proj.weight</c>, …, <c>lm_head.weight</c>).
/// Every linear layer comes from an <see cref="ILinearFactory"/>: dense, frozen NF4, or LoQT adapters.
/// </summary>
/// <remarks>Dispose the model to free its tensors.</remarks>
public sealed class LlamaForCausalLM : nn.Module
{
    private readonly LlamaModel _model;
    private readonly nn.Module<Tensor, Tensor>? _lmHead;

    private LlamaForCausalLM(LlamaBuildContext context)
        : base(nameof(LlamaForCausalLM))
    {
        Config = context.Config;
        ComputeDType = context.DType;
        Device = context.Device;
        _model = new LlamaModel("model", context);
        register_module("model", _model);
        if (!Config.TieWordEmbeddings)
        {
            _lmHead = context.Linear("lm_head", Config.HiddenSize, Config.VocabSize, hasBias: false);
            register_module("lm_head", _lmHead);
        }

        LinearLayers = context.Linears.ToArray();
    }

    /// <summary>The model's configuration.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The dtype activations flow in.</summary>
    public ScalarType ComputeDType { get; }

    /// <summary>Where the model lives.</summary>
    public Device Device { get; }

    /// <summary>
    /// Every linear layer, by its Hugging Face module name (<c>model.layers.0.self_attn.q_proj</c>, …, <c>lm_head</c>
    /// unless tied), each as its factory made it.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, nn.Module<Tensor, Tensor>>> LinearLayers { get; }

    /// <summary>The token embedding matrix <c>[vocab, hidden]</c> (also the output head when embeddings are tied).</summary>
    public TorchSharp.Modules.Parameter EmbeddingWeight => _model.EmbedTokens.Weight;

    /// <summary>
    /// Loads a Hugging Face checkpoint folder (<c>config.json</c> plus <c>model.safetensors</c> or a sharded index) tensor by
    /// tensor: each weight is read, converted by its layer's factory (to NF4, or to the compute dtype) and freed before the
    /// next is read, so memory stays near one tensor plus the built model.
    /// </summary>
    /// <param name="directory">The model folder.</param>
    /// <param name="options">Dtype, device and layer factories; <c>null</c> for a frozen F32 dense model on the CPU.</param>
    /// <param name="progress">Reported after each tensor.</param>
    /// <param name="cancellationToken">Stops loading between tensors.</param>
    /// <exception cref="FileNotFoundException">No config.json or no checkpoint in the folder.</exception>
    /// <exception cref="InvalidDataException">Missing or unexpected tensors, wrong shapes or dtypes (every problem is listed with the tensor's name and both shapes), or a malformed file.</exception>
    /// <exception cref="NotSupportedException">The config describes a model this implementation does not run.</exception>
    public static LlamaForCausalLM Load(
        string directory,
        LlamaLoadOptions? options = null,
        IProgress<LlamaLoadProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var config = LlamaConfig.Load(directory);
        using var source = new CheckpointWeightSource(directory, config);
        return Build(config, options, source, progress, cancellationToken);
    }

    /// <summary>
    /// A randomly initialised model (transformers' initialisation: N(0, initializer_range²) linear and embedding
    /// weights, zero biases, unit norms), built layer by layer straight into the factories, so a quantized model never
    /// exists in full precision. The same seed gives the same weights.
    /// </summary>
    /// <param name="config">The model's shape.</param>
    /// <param name="options">Dtype, device and layer factories; <c>null</c> for a frozen F32 dense model on the CPU.</param>
    /// <param name="seed">Seed of the CPU generator the weights are drawn from.</param>
    public static LlamaForCausalLM CreateRandom(LlamaConfig config, LlamaLoadOptions? options = null, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        using var source = new RandomWeightSource(config, seed);
        return Build(config, options, source, null, CancellationToken.None);
    }

    /// <summary>
    /// Bytes the weights occupy: every parameter (a tied embedding counted once) plus the NF4 storage of
    /// <see cref="Nf4Linear"/> layers. Non-parameter storage of other layer types is not included.
    /// </summary>
    public long WeightBytes
    {
        get
        {
            var dense = parameters().Sum(p => p.numel() * p.ElementSize);
            var quantized = LinearLayers.Select(l => l.Value).OfType<Nf4Linear>().Sum(l => l.Weight.StorageBytes);
            return dense + quantized;
        }
    }

    /// <summary>A new, empty key/value cache for generation with this model.</summary>
    public LlamaKvCache CreateCache() => new(Config.NumHiddenLayers);

    /// <summary>Runs the model.</summary>
    /// <param name="inputIds">Token ids <c>[B, T]</c> (any integer dtype).</param>
    /// <param name="attentionMask">
    /// <c>[B, cached + T]</c>, 1 for real tokens and 0 for padding (keys marked 0 are never attended); <c>null</c> when
    /// every token is real.
    /// </param>
    /// <param name="labels">
    /// <c>[B, T]</c> targets for the loss in Hugging Face's convention: the labels are the input ids, shifted inside
    /// (position t is scored against <c>labels[t + 1]</c>), and <c>-100</c> takes no loss. <c>null</c> for no loss.
    /// </param>
    /// <param name="cache">Keys/values of earlier tokens (extended by this call), or <c>null</c>.</param>
    /// <param name="positionIds"><c>[B, T]</c> positions; by default the cache length onwards.</param>
    /// <param name="logitsToKeep">When positive, compute logits only for the last this many positions (generation needs one).</param>
    public CausalLMOutput Forward(
        Tensor inputIds,
        Tensor? attentionMask = null,
        Tensor? labels = null,
        LlamaKvCache? cache = null,
        Tensor? positionIds = null,
        int logitsToKeep = 0)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.ndim != 2)
        {
            throw new ArgumentException($"input_ids must be [batch, length], got [{string.Join(", ", inputIds.shape)}]", nameof(inputIds));
        }

        if (cache is not null && cache.LayerCount != Config.NumHiddenLayers)
        {
            throw new ArgumentException($"the cache has {cache.LayerCount} layers, the model {Config.NumHiddenLayers}", nameof(cache));
        }

        using var scope = NewDisposeScope();
        var ids = inputIds.to(ScalarType.Int64, Device);
        CheckTokenIds(ids);
        var hidden = _model.Forward(ids, attentionMask, positionIds?.to(ScalarType.Int64, Device), cache);
        if (logitsToKeep > 0 && logitsToKeep < hidden.shape[1])
        {
            hidden = hidden.narrow(1, hidden.shape[1] - logitsToKeep, logitsToKeep);
        }

        var logits = _lmHead is null ? Gemm.Linear(hidden, _model.EmbedTokens.Weight) : _lmHead.call(hidden);
        Tensor? loss = null;
        if (labels is not null)
        {
            if (labels.ndim != 2 || labels.shape[0] != logits.shape[0] || labels.shape[1] != logits.shape[1])
            {
                throw new ArgumentException($"labels must be [{logits.shape[0]}, {logits.shape[1]}], got [{string.Join(", ", labels.shape)}]", nameof(labels));
            }

            loss = CausalLoss(logits, labels.to(ScalarType.Int64, Device));
        }

        return new CausalLMOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The next-token loss of <see cref="Forward"/> with labels (logits at t against labels at t + 1, <c>-100</c> taking
    /// no loss), computed without the logits: the output head and the cross-entropy run fused over row chunks
    /// (<see cref="LinearCrossEntropy"/>), so the <c>[B, T, vocab]</c> logits and their gradient never exist. What
    /// training and evaluation use. Heads that are not a bias-free dense weight take the unfused path.
    /// </summary>
    /// <param name="inputIds">Token ids <c>[B, T]</c>.</param>
    /// <param name="attentionMask"><c>[B, T]</c>, 1 for real tokens and 0 for padding; <c>null</c> when every token is real.</param>
    /// <param name="labels"><c>[B, T]</c> targets, unshifted, as for <see cref="Forward"/>.</param>
    /// <param name="reduction">Mean over the scored tokens (the training loss) or their sum (for evaluation over many batches).</param>
    /// <returns>An F32 scalar.</returns>
    public Tensor NextTokenLoss(Tensor inputIds, Tensor? attentionMask, Tensor labels, nn.Reduction reduction = nn.Reduction.Mean)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(labels);
        if (inputIds.ndim != 2 || labels.ndim != 2 || labels.shape[0] != inputIds.shape[0] || labels.shape[1] != inputIds.shape[1])
        {
            throw new ArgumentException($"input_ids and labels must both be [batch, length], got [{string.Join(", ", inputIds.shape)}] and [{string.Join(", ", labels.shape)}]", nameof(labels));
        }

        using var scope = NewDisposeScope();
        var ids = inputIds.to(ScalarType.Int64, Device);
        var hidden = _model.Forward(ids, attentionMask, null, null);
        var length = hidden.shape[1];
        var targets = labels.to(ScalarType.Int64, Device).narrow(1, 1, length - 1).reshape(-1);
        var (weight, route) = _lmHead switch
        {
            null => (_model.EmbedTokens.Weight, null),
            IDenseWeightLinear { HasBias: false } dense when dense.Weight.dtype == hidden.dtype => (dense.Weight, dense.RouteWeightGradient),
            _ => ((TorchSharp.Modules.Parameter?)null, (Func<Tensor, Tensor?>?)null),
        };
        Tensor loss;
        if (weight is null)
        {
            var logits = _lmHead!.call(hidden).narrow(1, 0, length - 1).to(ScalarType.Float32);
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[2]), targets, ignore_index: -100, reduction: reduction);
        }
        else
        {
            var shifted = hidden.narrow(1, 0, length - 1).reshape(-1, hidden.shape[2]);
            loss = LinearCrossEntropy.Apply(shifted, weight, targets, reduction, route);
        }

        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>Mean next-token cross-entropy in F32: logits at t against labels at t + 1, ignoring <c>-100</c>.</summary>
    /// <param name="logits"><c>[B, T, vocab]</c>.</param>
    /// <param name="labels"><c>[B, T]</c>.</param>
    public static Tensor CausalLoss(Tensor logits, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        using var scope = NewDisposeScope();
        var length = logits.shape[1];
        var vocab = logits.shape[2];
        var predicted = logits.narrow(1, 0, length - 1).to(ScalarType.Float32).reshape(-1, vocab);
        var targets = labels.narrow(1, 1, length - 1).reshape(-1);
        return nn.functional.cross_entropy(predicted, targets, ignore_index: -100).MoveToOuterDisposeScope();
    }

    // An id outside the embedding would otherwise surface as an opaque native indexing error.
    private void CheckTokenIds(Tensor ids)
    {
        if (ids.numel() == 0)
        {
            return;
        }

        using var min = ids.min();
        using var max = ids.max();
        var (low, high) = (min.item<long>(), max.item<long>());
        if (low < 0 || high >= Config.VocabSize)
        {
            throw new ArgumentException(
                $"input_ids hold token id {(low < 0 ? low : high)}, outside the model's vocabulary of {Config.VocabSize} (ids 0 to {Config.VocabSize - 1})",
                "inputIds");
        }
    }

    private static LlamaForCausalLM Build(
        LlamaConfig config,
        LlamaLoadOptions? options,
        ILlamaWeightSource source,
        IProgress<LlamaLoadProgress>? progress,
        CancellationToken cancellationToken)
    {
        options ??= new LlamaLoadOptions();
        var context = new LlamaBuildContext(config, options, source, progress, cancellationToken);
        try
        {
            return new LlamaForCausalLM(context);
        }
        catch
        {
            // Layers built before the failure are not reachable from a model: free them here.
            foreach (var (_, layer) in context.Linears)
            {
                layer.Dispose();
            }

            throw;
        }
    }
}
