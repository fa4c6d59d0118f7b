using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// Frees the managed handles of gradients that custom autograd functions returned, one backward call later.
/// </summary>
/// <remarks>
/// TorchSharp copies a returned gradient into the autograd engine only after the managed backward returns, so the
/// handle cannot be disposed inside it; left alone, each handle would keep its tensor's storage alive until the
/// step's dispose scope ends (or the GC runs), holding every layer's input gradient at once. Releasing them at the
/// start of the next custom backward keeps at most one layer's worth alive. Layers made by one factory share one.
/// </remarks>
internal sealed class BackwardResultRelease
{
    private readonly object gate = new();
    private List<Tensor> pending = [];

    /// <summary>Keeps <paramref name="tensor"/> until the next <see cref="ReleasePending"/>.</summary>
    public Tensor? Hold(Tensor? tensor)
    {
        if (tensor is not null)
        {
            lock (gate)
            {
                pending.Add(tensor);
            }
        }

        return tensor;
    }

    /// <summary>Disposes the handles held since the last call.</summary>
    public void ReleasePending()
    {
        List<Tensor> release;
        lock (gate)
        {
            release = pending;
            pending = [];
        }

        foreach (var t in release)
        {
            t.Dispose();
        }
    }
}
