namespace LoQT.Models.Llama;

/// <summary>One tensor of a Hugging Face Llama checkpoint (see <see cref="LlamaConfig.CheckpointTensors"/>).</summary>
/// <param name="Name">The Hugging Face name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="Shape">Its shape, e.g. <c>[4096, 4096]</c>.</param>
public sealed record LlamaCheckpointTensor(string Name, IReadOnlyList<long> Shape)
{
    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Whether it is a linear layer's 2-D weight inside a decoder layer (what NF4 loading quantizes by default).</summary>
    public bool IsDecoderProjection => Shape.Count == 2 && Name.StartsWith("model.layers.", System.StringComparison.Ordinal) && Name.EndsWith("_proj.weight", System.StringComparison.Ordinal);
}
