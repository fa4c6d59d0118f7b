namespace LoQT.Export;

/// <summary>What happens to one tensor of an export.</summary>
public enum ExportStep
{
    /// <summary>A linear layer's weight, its adapters merged in (when it has any), is NF4-quantized.</summary>
    MergeAndQuantize,

    /// <summary>A linear layer's adapters are merged into its weight, written dense.</summary>
    Merge,

    /// <summary>A tensor without adapters (embedding, norm, bias, a dense layer's weight) is written in the export's dtype.</summary>
    Convert,
}

/// <summary>Progress of an export: the tensor about to be written.</summary>
/// <param name="Index">0-based position among the model's tensors.</param>
/// <param name="Count">How many tensors the model has.</param>
/// <param name="Name">The tensor's Hugging Face name, e.g. <c>model.layers.0.mlp.up_proj.weight</c>.</param>
/// <param name="Step">What is done to it.</param>
public sealed record ExportProgress(int Index, int Count, string Name, ExportStep Step);
