using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>What the modules need while the model is built: config, options, the weight source, and progress.</summary>
internal sealed class LlamaBuildContext(
    LlamaConfig config,
    LlamaLoadOptions options,
    ILlamaWeightSource source,
    IProgress<LlamaLoadProgress>? progress,
    CancellationToken cancellationToken)
{
    private readonly ILinearFactory _targeted = options.LinearFactory ?? new DenseLinearFactory();
    private readonly ILinearFactory _untargeted = options.UntargetedLinearFactory ?? new DenseLinearFactory(options.TrainUntargeted);
    private readonly List<KeyValuePair<string, nn.Module<Tensor, Tensor>>> _linears = [];
    private int _done;

    public LlamaConfig Config { get; } = config;

    public LlamaLoadOptions Options { get; } = options;

    public Device Device { get; } = options.Device ?? CPU;

    public ScalarType DType { get; } = options.ComputeDType;

    /// <summary>Every linear layer made so far, by name, in build order.</summary>
    public IReadOnlyList<KeyValuePair<string, nn.Module<Tensor, Tensor>>> Linears => _linears;

    public nn.Module<Tensor, Tensor> Linear(string name, long inFeatures, long outFeatures, bool hasBias)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var spec = new LinearLayerSpec(name, inFeatures, outFeatures, hasBias, DType, Device);
        var layer = source.Linear(spec, Options.IsTargeted(name) ? _targeted : _untargeted);
        _linears.Add(KeyValuePair.Create(name, layer));
        Report(name + ".weight");
        return layer;
    }

    public LlamaRmsNorm Norm(string name)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var weightName = name + ".weight";
        using var stored = source.Norm(weightName, Config.HiddenSize);
        var norm = new LlamaRmsNorm(name, Convert(stored), Config.RmsNormEps, Options.TrainUntargeted);
        Report(weightName);
        return norm;
    }

    public LlamaEmbedding Embedding(string name)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var weightName = name + ".weight";
        long? padding = Config.PadTokenId is { } pad ? (pad < 0 ? pad + Config.VocabSize : pad) : null;
        using var stored = source.Embedding(weightName, [Config.VocabSize, Config.HiddenSize], padding);
        var embedding = new LlamaEmbedding(name, Convert(stored), padding, Options.TrainUntargeted);
        Report(weightName);
        return embedding;
    }

    private Tensor Convert(Tensor stored)
    {
        using var converted = stored.to(DType, Device);
        return converted.detach().DetachFromDisposeScope();
    }

    private void Report(string name) => progress?.Report(new LlamaLoadProgress(name, ++_done, source.TensorCount));
}
