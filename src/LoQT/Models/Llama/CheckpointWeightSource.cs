using System.Globalization;
using System.Text;
using LoQT.Quantization;
using LoQT.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Models.Llama;

/// <summary>
/// Weights read from a Hugging Face checkpoint one tensor at a time. The names, dtypes and shapes are checked against
/// the config before anything is read, so a mismatched checkpoint fails at once with every problem listed.
/// Linear weights stored in bitsandbytes NF4 format go to the factory as they are (<see cref="ILinearFactory.CreateQuantized"/>).
/// </summary>
internal sealed class CheckpointWeightSource : ILlamaWeightSource, IDisposable
{
    private const int MaxListed = 20;

    private readonly SafeTensorsCheckpoint _checkpoint;
    private readonly CheckpointTensorReader _reader;
    private readonly IReadOnlyList<LlamaTensorSpec> _expected;

    public CheckpointWeightSource(string directory, LlamaConfig config)
    {
        _checkpoint = SafeTensorsCheckpoint.Open(directory);
        try
        {
            _expected = LlamaWeightLayout.Expected(config);
            Validate(_checkpoint, config, _expected);
            _reader = new CheckpointTensorReader(_checkpoint);
        }
        catch
        {
            _checkpoint.Dispose();
            throw;
        }
    }

    public int TensorCount => _expected.Count(t => t.Role != LlamaTensorRole.LinearBias);

    public Tensor Norm(string name, long size) => ReadFloat(name);

    public Tensor Embedding(string name, long[] shape, long? paddingIndex) => ReadFloat(name);

    public nn.Module<Tensor, Tensor> Linear(LinearLayerSpec spec, ILinearFactory factory)
    {
        var weightName = spec.Name + ".weight";
        using var bias = spec.HasBias ? ReadFloat(spec.Name + ".bias") : null;
        if (BnbNf4Format.IsQuantized(_checkpoint, weightName))
        {
            return factory.CreateQuantized(spec, BnbNf4Format.Read(_checkpoint, weightName), bias);
        }

        using var weight = ReadFloat(weightName);
        return factory.Create(spec, weight, bias);
    }

    public void Dispose()
    {
        _reader.Dispose();
        _checkpoint.Dispose();
    }

    private static bool IsFloat(SafeTensorDType dtype) =>
        dtype is SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.F64;

    private Tensor ReadFloat(string name)
    {
        var tensor = _reader.Read(name);
        if (tensor.dtype != ScalarType.Float64)
        {
            return tensor;
        }

        using (tensor)
        {
            return tensor.to(ScalarType.Float32);
        }
    }

    /// <summary>
    /// Checks the names, dtypes and shapes of <paramref name="checkpoint"/> against what <paramref name="config"/> needs
    /// (bitsandbytes NF4 linear weights by their quant state's shape), without reading any tensor data.
    /// </summary>
    /// <exception cref="InvalidDataException">Every problem found, each naming the tensor (the first 20, then a count).</exception>
    internal static void Validate(SafeTensorsCheckpoint checkpoint, LlamaConfig config, IReadOnlyList<LlamaTensorSpec> expected)
    {
        var problems = new List<string>();
        var expectedNames = new HashSet<string>(StringComparer.Ordinal);
        var quantized = new HashSet<string>(StringComparer.Ordinal);
        foreach (var spec in expected)
        {
            expectedNames.Add(spec.Name);
            if (!checkpoint.Contains(spec.Name))
            {
                problems.Add($"missing tensor '{spec.Name}' (config.json needs shape {spec.ShapeText})");
                continue;
            }

            var info = checkpoint.GetInfo(spec.Name);
            if (BnbNf4Format.IsQuantized(checkpoint, spec.Name))
            {
                var state = BnbNf4Format.ReadQuantState(checkpoint, spec.Name);
                if (spec.Role != LlamaTensorRole.LinearWeight)
                {
                    problems.Add($"tensor '{spec.Name}' is stored as bitsandbytes 4-bit, but only linear layer weights can be");
                }
                else if (!state.Shape.SequenceEqual(spec.Shape))
                {
                    problems.Add($"tensor '{spec.Name}' has shape [{string.Join(", ", state.Shape)}] in the checkpoint (bitsandbytes quant_state), but config.json needs {spec.ShapeText}");
                }
                else
                {
                    quantized.Add(spec.Name);
                }
            }
            else if (!IsFloat(info.DType))
            {
                problems.Add($"tensor '{spec.Name}' is {info.DType.ToHeaderName()} {info.ShapeText}, but a floating-point {spec.ShapeText} is needed");
            }
            else if (!info.Shape.SequenceEqual(spec.Shape))
            {
                problems.Add($"tensor '{spec.Name}' has shape {info.ShapeText} in the checkpoint, but config.json needs {spec.ShapeText}");
            }
        }

        foreach (var name in checkpoint.TensorNames)
        {
            var isQuantState = BnbNf4Format.WeightNameOf(name) is { } owner && quantized.Contains(owner);
            if (!expectedNames.Contains(name) && !isQuantState && !LlamaWeightLayout.IsIgnorable(name, config))
            {
                problems.Add($"unexpected tensor '{name}' {checkpoint.GetInfo(name).ShapeText} (not part of the model config.json describes)");
            }
        }

        if (problems.Count > 0)
        {
            var message = new StringBuilder(string.Create(CultureInfo.InvariantCulture, $"checkpoint {checkpoint.Path} does not match its config ({config.NumHiddenLayers} layers, hidden {config.HiddenSize}, vocab {config.VocabSize}): "));
            message.AppendJoin("; ", problems.Take(MaxListed));
            if (problems.Count > MaxListed)
            {
                message.Append(CultureInfo.InvariantCulture, $"; and {problems.Count - MaxListed} more");
            }

            throw new InvalidDataException(message.ToString());
        }
    }
}
