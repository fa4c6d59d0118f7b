using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>AdamW with fp32 moments, following PyTorch's <c>torch.optim.AdamW</c> (single-tensor path) step for step.</summary>
public sealed class AdamW : AdamWOptimizer
{
    /// <summary>Creates the optimizer.</summary>
    /// <param name="parameters">Named parameters.</param>
    /// <param name="options">Hyper-parameters (PyTorch defaults when null).</param>
    public AdamW(IEnumerable<TrainableParameter> parameters, AdamWOptions? options = null)
        : base(parameters, options ?? new AdamWOptions())
    {
    }

    private protected override AdamMoments CreateMoments(long[] shape, Device device) => new Fp32AdamMoments(shape, device);
}
