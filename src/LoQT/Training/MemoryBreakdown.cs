namespace LoQT.Training;

/// <summary>Predicted peak memory of a training run, in bytes, split by what holds it. The parts add up to <see cref="Total"/>.</summary>
public sealed record MemoryBreakdown
{
    /// <summary>The weights of the targeted linear layers (NF4 with absmax, or the compute dtype).</summary>
    public long Weights { get; init; }

    /// <summary>The projections P (LoQT, NF4 or compute dtype; GaLore's projection matrices).</summary>
    public long Projections { get; init; }

    /// <summary>Trainable low-rank factors: B (LoQT) or A and B (LoRA).</summary>
    public long Adapters { get; init; }

    /// <summary>Parameters never quantized: embeddings, norms, lm_head when untied, biases.</summary>
    public long NonQuantizedParameters { get; init; }

    /// <summary>Gradients of the trainable tensors (with per-layer updates, only the largest one at a time).</summary>
    public long Gradients { get; init; }

    /// <summary>Optimizer moments of the trainable tensors (GaLore: in the projected space).</summary>
    public long OptimizerState { get; init; }

    /// <summary>
    /// Tensors autograd keeps for backward and one layer's backward transient, plus the loss's fp32 logits buffers by
    /// what they exceed <see cref="Gradients"/> and <see cref="Workspace"/> (they are freed before either exists).
    /// </summary>
    public long Activations { get; init; }

    /// <summary>Short-lived buffers at the peak: one dequantized weight, or an optimizer step's temporaries.</summary>
    public long Workspace { get; init; }

    /// <summary>
    /// What an update step of the projection adds to the peak of an ordinary step. LoQT: at a re-initialization step
    /// one layer's full gradient and SVD workspace, then its merge and error compensation, inside backward next to the
    /// activations (not the loss's logits buffers, freed by then), while no gradient or optimizer scratch exists; only
    /// what that exceeds an ordinary step's gradients and workspace counts here. GaLore: the SVD inside the optimizer
    /// step, on top of everything else.
    /// </summary>
    public long UpdateTransient { get; init; }

    /// <summary>Runtime and libtorch (CPU), or the CUDA context (GPU).</summary>
    public long Overhead { get; init; }

    /// <summary>The predicted peak: the sum of all parts.</summary>
    public long Total => Weights + Projections + Adapters + NonQuantizedParameters + Gradients + OptimizerState
        + Activations + Workspace + UpdateTransient + Overhead;

    /// <summary>The peak between update steps (everything but <see cref="UpdateTransient"/>).</summary>
    public long SteadyTotal => Total - UpdateTransient;

    /// <summary>The parts in display order, with stable snake_case keys (as in <c>loqt memory --json</c>).</summary>
    public IReadOnlyList<KeyValuePair<string, long>> Parts =>
    [
        new("weights", Weights),
        new("projections", Projections),
        new("adapters", Adapters),
        new("non_quantized", NonQuantizedParameters),
        new("gradients", Gradients),
        new("optimizer_state", OptimizerState),
        new("activations", Activations),
        new("workspace", Workspace),
        new("update_transient", UpdateTransient),
        new("overhead", Overhead),
    ];
}
