using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// Weights as transformers' <c>LlamaPreTrainedModel._init_weights</c> makes them: linear and embedding weights from
/// N(0, initializer_range²), biases zero, the embedding's padding row zero, norms one. Each weight is drawn in F32 on the
/// CPU just before its layer is built and handed to the factory, so no full-precision model ever exists at once.
/// </summary>
internal sealed class RandomWeightSource(LlamaConfig config, long seed) : ILlamaWeightSource, IDisposable
{
    private readonly Generator _generator = new Generator((ulong)seed);

    public int TensorCount => LlamaWeightLayout.Expected(config).Count(t => t.Role != LlamaTensorRole.LinearBias);

    public Tensor Norm(string name, long size) => torch.ones(size, ScalarType.Float32);

    public Tensor Embedding(string name, long[] shape, long? paddingIndex)
    {
        var weight = Normal(shape);
        if (paddingIndex is { } pad)
        {
            // zero_() hands back a second handle to the row; left undisposed it would keep the whole F32 matrix
            // (500 MiB for 7b) alive until the GC finalizes it, long after the model has its own copy.
            using var row = weight[pad];
            using var zeroed = row.zero_();
        }

        return weight;
    }

    public nn.Module<Tensor, Tensor> Linear(LinearLayerSpec spec, ILinearFactory factory)
    {
        using var weight = Normal(spec.WeightShape);
        using var bias = spec.HasBias ? torch.zeros(spec.OutFeatures, ScalarType.Float32) : null;
        return factory.Create(spec, weight, bias);
    }

    public void Dispose() => _generator.Dispose();

    private Tensor Normal(long[] shape)
    {
        var weight = torch.empty(shape, ScalarType.Float32);
        using (torch.no_grad())
        {
            weight.normal_(0, config.InitializerRange, _generator);
        }

        return weight;
    }
}
