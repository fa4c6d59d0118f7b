using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>Checks of the weight and bias a linear layer is built from.</summary>
internal static class LinearShapes
{
    public static void Validate(string name, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (weight.dim() != 2 || weight.shape[0] < 1 || weight.shape[1] < 1)
        {
            throw new ArgumentException($"The weight of layer '{name}' must be a non-empty 2-D [out, in] tensor; got shape [{string.Join(", ", weight.shape)}].", nameof(weight));
        }

        if (!is_floating_point(weight))
        {
            throw new ArgumentException($"The weight of layer '{name}' must be floating point; got {weight.dtype}.", nameof(weight));
        }

        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != weight.shape[0]))
        {
            throw new ArgumentException($"The bias of layer '{name}' must have shape [{weight.shape[0]}]; got [{string.Join(", ", bias.shape)}].", nameof(bias));
        }
    }
}
