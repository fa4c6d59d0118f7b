using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>What <see cref="LlamaForCausalLM.Forward"/> returns. Dispose it to free both tensors.</summary>
public sealed class CausalLMOutput : IDisposable
{
    internal CausalLMOutput(Tensor logits, Tensor? loss)
    {
        Logits = logits;
        Loss = loss;
    }

    /// <summary>Next-token logits <c>[B, T, vocab]</c> (only the last positions when <c>logitsToKeep</c> was set), in the compute dtype.</summary>
    public Tensor Logits { get; }

    /// <summary>
    /// With labels: the mean next-token cross-entropy (F32 scalar) over positions whose shifted label is not
    /// <c>-100</c>, as transformers computes it; otherwise <c>null</c>.
    /// </summary>
    public Tensor? Loss { get; }

    /// <summary>Frees the logits and the loss.</summary>
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
    }
}
