using LoQT.Loqt;
using LoQT.Models.Llama;

namespace LoQT.Training;

/// <summary>
/// Bytes the tensors of a training model hold, by the memory planner's components (<see cref="MemoryBreakdown"/>):
/// what the planner's weights, projections, adapters and non-quantized parameters are, counted from the real tensors.
/// </summary>
/// <param name="Weights">The decoder layers' linear weights W: NF4 storage (or dense, or trainable for full/GaLore).</param>
/// <param name="Projections">LoQT's projections P (NF4 or dense).</param>
/// <param name="Adapters">The trainable low-rank factors: LoQT's B, LoRA's A and B.</param>
/// <param name="NonQuantized">Everything else: embeddings, norms, lm_head, biases.</param>
public sealed record ModelTensorBytes(long Weights, long Projections, long Adapters, long NonQuantized)
{
    /// <summary>All four.</summary>
    public long Total => Weights + Projections + Adapters + NonQuantized;

    /// <summary>Counts the tensors of <paramref name="model"/>.</summary>
    /// <param name="model">A model built by <see cref="LoqtCheckpoint"/> (any method) or the Llama loaders.</param>
    public static ModelTensorBytes Of(LlamaForCausalLM model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long weights = 0, projections = 0, adapters = 0;
        var counted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, layer) in model.LinearLayers)
        {
            // The planner's "weights" are the decoder layers' linears; lm_head is one of the non-quantized parameters.
            var decoder = name.StartsWith("model.layers.", StringComparison.Ordinal);
            switch (layer)
            {
                case LoqtLinear loqt:
                    weights += loqt.Weight.StorageBytes;
                    projections += loqt.Projection.StorageBytes;
                    adapters += Bytes(loqt.Adapter);
                    counted.Add(name + ".adapter");
                    break;
                case LoraLinear lora:
                    weights += lora.Weight.StorageBytes;
                    adapters += Bytes(lora.LoraA) + Bytes(lora.LoraB);
                    counted.Add(name + ".lora_A");
                    counted.Add(name + ".lora_B");
                    break;
                case TrainableDenseLinear dense when decoder:
                    weights += Bytes(dense.Weight);
                    counted.Add(name + ".weight");
                    break;
                case DenseLinear dense when decoder:
                    weights += Bytes(dense.Weight);
                    counted.Add(name + ".weight");
                    break;
                case Nf4Linear nf4 when decoder:
                    weights += nf4.Weight.StorageBytes;
                    break;
            }
        }

        var nonQuantized = model.named_parameters().Where(p => !counted.Contains(p.name)).Sum(p => Bytes(p.parameter));
        return new ModelTensorBytes(weights, projections, adapters, nonQuantized);
    }

    private static long Bytes(TorchSharp.torch.Tensor tensor) => tensor.numel() * tensor.ElementSize;
}
