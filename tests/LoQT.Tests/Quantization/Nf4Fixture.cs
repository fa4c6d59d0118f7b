using System.Runtime.InteropServices;
using System.Text.Json;
using LoQT.SafeTensors;
using LoQT.Tests.Support;
using TorchSharp;

namespace LoQT.Tests.Quantization;

/// <summary>The cases of <c>fixtures/nf4</c>: inputs and the bytes and values bitsandbytes semantics give for them.</summary>
internal sealed class Nf4Fixture
{
    private static readonly Lazy<Nf4Fixture> Shared = new(() => new Nf4Fixture(TestPaths.Fixture("nf4")));

    private readonly Dictionary<string, (SafeTensorDType DType, long[] Shape, byte[] Data)> entries = new(StringComparer.Ordinal);

    private Nf4Fixture(string directory)
    {
        // Read everything once (about 1 MB) so tests never hold the mapping open.
        using (var file = SafeTensorsFile.Open(Path.Combine(directory, "nf4_cases.safetensors")))
        {
            foreach (var info in file.Tensors)
            {
                entries[info.Name] = (info.DType, info.Shape, file.GetBytes(info.Name).ToArray());
            }
        }

        using var cases = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(directory, "cases.json")));
        CaseIds = cases.RootElement.EnumerateArray().Select(c => c.GetProperty("case").GetInt32()).ToArray();
    }

    public static Nf4Fixture Instance => Shared.Value;

    public static TheoryData<int> Cases
    {
        get
        {
            var data = new TheoryData<int>();
            foreach (var id in Instance.CaseIds)
            {
                data.Add(id);
            }

            return data;
        }
    }

    public int[] CaseIds { get; }

    public string DType(string name) => entries[name].DType.ToHeaderName();

    public long[] Shape(string name) => entries[name].Shape;

    public ReadOnlySpan<byte> Bytes(string name) => entries[name].Data;

    public float[] Floats(string name) =>
        entries[name].DType == SafeTensorDType.F32
            ? MemoryMarshal.Cast<byte, float>(entries[name].Data).ToArray()
            : throw new InvalidOperationException($"{name} is {DType(name)}, not F32.");

    /// <summary>The tensor with its stored dtype and shape.</summary>
    public torch.Tensor Tensor(string name)
    {
        var (dtype, shape, data) = entries[name];
        var result = torch.empty(shape, dtype.ToScalarType());
        data.CopyTo(result.bytes);
        return result;
    }
}
