using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>The SwiGLU MLP: <c>down(silu(gate(x)) · up(x))</c>.</summary>
internal sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _gate;
    private readonly nn.Module<Tensor, Tensor> _up;
    private readonly nn.Module<Tensor, Tensor> _down;

    public LlamaMlp(string name, LlamaBuildContext context)
        : base(name)
    {
        var config = context.Config;
        _gate = context.Linear(name + ".gate_proj", config.HiddenSize, config.IntermediateSize, config.MlpBias);
        _up = context.Linear(name + ".up_proj", config.HiddenSize, config.IntermediateSize, config.MlpBias);
        _down = context.Linear(name + ".down_proj", config.IntermediateSize, config.HiddenSize, config.MlpBias);
        register_module("gate_proj", _gate);
        register_module("up_proj", _up);
        register_module("down_proj", _down);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = nn.functional.silu(_gate.call(input)) * _up.call(input);
        return _down.call(hidden).MoveToOuterDisposeScope();
    }
}
