using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// The token embedding. Like PyTorch's <c>nn.Embedding(padding_idx)</c>, positions holding the padding id send no
/// gradient to the padding row.
/// </summary>
internal sealed class LlamaEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly long? _paddingIndex;

    public LlamaEmbedding(string name, Tensor weight, long? paddingIndex, bool trainable)
        : base(name)
    {
        Weight = new Parameter(weight, trainable);
        _paddingIndex = paddingIndex;
        register_parameter("weight", Weight);
    }

    public Parameter Weight { get; }

    public override Tensor forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var shape = inputIds.shape.Append(Weight.shape[1]).ToArray();
        var rows = Weight.index_select(0, inputIds.reshape(-1)).view(shape);
        if (_paddingIndex is { } pad && rows.requires_grad)
        {
            // Same values; the detached copy at padding positions keeps their gradient out of the padding row.
            var isPad = inputIds.eq(pad).unsqueeze(-1);
            rows = torch.where(isPad, rows.detach(), rows);
        }

        return rows.MoveToOuterDisposeScope();
    }
}
