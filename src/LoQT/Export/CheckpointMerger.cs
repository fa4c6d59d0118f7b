using LoQT.Loqt;
using static TorchSharp.torch;

namespace LoQT.Export;

/// <summary>
/// The effective weight of each linear layer of a LoQT checkpoint, read and merged one layer at a time:
/// deq(W) + α·B·P (or α·P·B) for <c>loqt</c> and <c>loqt-nq</c> layers, deq(W) + α·B·A for <c>lora</c>, and the trained
/// weight itself for <c>full</c>, <c>galore</c> and untargeted layers. The sums are <see cref="AdapterMerge"/>'s, so they
/// equal what the layers compute with, bit for bit.
/// </summary>
internal static class CheckpointMerger
{
    /// <summary>Whether the layer has adapters to merge (a targeted layer of a low-rank method).</summary>
    /// <param name="reader">The checkpoint.</param>
    /// <param name="layer">The layer's module name.</param>
    public static bool HasAdapters(LoqtCheckpointReader reader, string layer) =>
        reader.Metadata.IsTargeted(layer) && reader.Metadata.Method is LoqtMethod.Loqt or LoqtMethod.LoqtNoQuantization or LoqtMethod.Lora;

    /// <summary>The layer's merged weight in fp32, [out, in], as a new tensor; at most one layer's W, P and B are read for it.</summary>
    /// <param name="reader">The checkpoint.</param>
    /// <param name="layer">The layer's module name, e.g. <c>model.layers.0.mlp.up_proj</c>.</param>
    /// <param name="inFeatures">Columns of its weight.</param>
    /// <param name="outFeatures">Rows of its weight.</param>
    public static Tensor MergedWeight(LoqtCheckpointReader reader, string layer, long inFeatures, long outFeatures)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var weightName = layer + ".weight";
        var options = reader.Metadata.Options;
        if (!HasAdapters(reader, layer))
        {
            if (reader.IsQuantizedInModel(weightName))
            {
                using var frozen = reader.ReadModelMatrix(weightName);
                return frozen.Values(ScalarType.Float32); // a new tensor: dequantized
            }

            var dense = reader.ReadModelTensor(weightName);
            return dense.dtype == ScalarType.Float32 ? dense : dense.to(ScalarType.Float32, disposeAfter: true);
        }

        using var scope = NewDisposeScope();
        using var weight = reader.ReadModelMatrix(weightName);
        Tensor merged;
        if (reader.Metadata.Method == LoqtMethod.Lora)
        {
            var a = reader.ReadAdapterTensor(layer + ".lora_A");
            var b = reader.ReadAdapterTensor(layer + ".lora_B");
            merged = AdapterMerge.LoraMerged(weight, a, b, options.Alpha, ScalarType.Float32);
        }
        else
        {
            using var projection = reader.ReadAdapterMatrix(layer + ".projection");
            var adapter = reader.ReadAdapterTensor(layer + ".adapter");
            merged = AdapterMerge.LoqtMerged(weight, projection, adapter, ProjectionSides.For(inFeatures, outFeatures), options.Alpha, ScalarType.Float32);
        }

        return merged.MoveToOuterDisposeScope();
    }
}
