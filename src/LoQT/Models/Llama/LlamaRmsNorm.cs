using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>RMSNorm as transformers' <c>LlamaRMSNorm</c>: normalized in F32, cast back to the input dtype, then scaled by the weight.</summary>
internal sealed class LlamaRmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter _weight;
    private readonly double _eps;

    public LlamaRmsNorm(string name, Tensor weight, double eps, bool trainable)
        : base(name)
    {
        _weight = new Parameter(weight, trainable);
        _eps = eps;
        register_parameter("weight", _weight);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to(ScalarType.Float32);
        var variance = x.pow(2).mean([-1L], keepdim: true);
        var normalized = x * torch.rsqrt(variance + _eps);
        return (_weight * normalized.to(input.dtype)).MoveToOuterDisposeScope();
    }
}
