using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>
/// Routes a parameter's gradient to an <see cref="IParameterUpdateSink"/> the moment backward completes it, so the
/// parameter can be updated (and its gradient freed) right there: per-layer updates for parameters that are not
/// inside a LoQT layer (norms, embeddings, biases).
/// </summary>
/// <remarks>
/// Use the returned tensor in place of the parameter in forward, once per forward (all uses of the parameter must go
/// through the same tapped tensor, so the sink sees its whole gradient).
/// </remarks>
public static class GradientTap
{
    /// <summary>An identity on <paramref name="parameter"/> whose backward offers the gradient to <paramref name="sink"/>.</summary>
    /// <param name="parameter">The trainable parameter.</param>
    /// <param name="sink">Where its gradient goes; when the sink declines, autograd accumulates it as usual.</param>
    /// <returns>A tensor to use in forward instead of the parameter.</returns>
    public static Tensor Apply(Parameter parameter, IParameterUpdateSink sink)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ArgumentNullException.ThrowIfNull(sink);
        return GradientTapFunction.apply(parameter, new GradientTapTarget(parameter, sink));
    }
}

/// <summary>The parameter and sink of one tap (kept out of the autograd context's tensor list on purpose).</summary>
internal sealed record GradientTapTarget(Parameter Parameter, IParameterUpdateSink Sink);

/// <summary>Identity forward; backward hands the gradient to the sink.</summary>
internal sealed class GradientTapFunction : autograd.SingleTensorFunction<GradientTapFunction>
{
    private const string TargetKey = "target";

    /// <inheritdoc/>
    public override string Name => nameof(GradientTapFunction);

    /// <inheritdoc/>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        ctx.save_data(TargetKey, vars[1]);

        // Returning the input itself makes autograd hand out a view of it with this node as its gradient function.
        return (Tensor)vars[0];
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var target = (GradientTapTarget)ctx.get_data(TargetKey);
        if (target.Sink.TryConsumeGradient(target.Parameter, grad_output))
        {
            grad_output.Dispose();
            return [null!, null!];
        }

        // Handed back to autograd; TorchSharp copies it after this returns, and the handle dies with its scope.
        return [grad_output, null!];
    }
}
