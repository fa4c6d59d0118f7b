namespace LoQT.Models.Llama;

/// <summary>Progress of building a model: reported after each tensor or layer weight is in place.</summary>
/// <param name="Name">The tensor just loaded (checkpoint name, e.g. <c>model.layers.3.mlp.up_proj.weight</c>).</param>
/// <param name="Done">Tensors loaded so far.</param>
/// <param name="Total">Tensors to load.</param>
public readonly record struct LlamaLoadProgress(string Name, int Done, int Total);
