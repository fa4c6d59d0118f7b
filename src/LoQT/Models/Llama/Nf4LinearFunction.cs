using LoQT.Native;
using LoQT.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// <c>y = x·deq(W)ᵀ + b</c> for a frozen NF4 weight. Backward recomputes deq(W) for the input gradient instead of
/// keeping the dequantized weight from forward, so no full-precision copy of any weight stays alive between the passes.
/// </summary>
/// <remarks>Arguments of <c>apply</c>: input, <see cref="Nf4Tensor"/> weight, bias (or null), compute dtype.</remarks>
internal sealed class Nf4LinearFunction : autograd.SingleTensorFunction<Nf4LinearFunction>
{
    private const string WeightKey = "weight";
    private const string DTypeKey = "dtype";
    private const string InputNeedsGradKey = "input_needs_grad";
    private const string BiasNeedsGradKey = "bias_needs_grad";

    public override string Name => nameof(Nf4LinearFunction);

    public static Tensor Apply(Tensor input, Nf4Tensor weight, Tensor? bias, ScalarType dtype) => apply(input, weight, bias!, dtype);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var weight = (Nf4Tensor)vars[1];
        var bias = vars[2] as Tensor;
        var dtype = (ScalarType)vars[3];
        ctx.save_data(WeightKey, weight);
        ctx.save_data(DTypeKey, dtype);
        ctx.save_data(InputNeedsGradKey, input.requires_grad);
        ctx.save_data(BiasNeedsGradKey, bias is not null && bias.requires_grad);
        using var dense = weight.Dequantize(Gemm.OperandDtype(dtype, input.device));
        return Gemm.Linear(input, dense, bias);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var weight = (Nf4Tensor)ctx.get_data(WeightKey);
        var dtype = (ScalarType)ctx.get_data(DTypeKey);
        Tensor? gradInput = null;
        if ((bool)ctx.get_data(InputNeedsGradKey))
        {
            using var dense = weight.Dequantize(Gemm.OperandDtype(dtype, grad_output.device));
            gradInput = Gemm.MatMul(grad_output, dense);
        }

        Tensor? gradBias = null;
        if ((bool)ctx.get_data(BiasNeedsGradKey))
        {
            using var flat = grad_output.reshape(-1, grad_output.shape[^1]);
            gradBias = flat.sum(0);
        }

        return [gradInput!, null!, gradBias!, null!];
    }
}
