using System.Text.Json;
using LoQT.Tests.Support;

namespace LoQT.Tests.Quantization;

/// <summary>The cases of <c>fixtures/nf4</c>: inputs and the bytes and values bitsandbytes semantics give for them.</summary>
internal sealed class Nf4Fixture
{
    private static readonly Lazy<Nf4Fixture> Shared = new(() => new Nf4Fixture(TestPaths.Fixture("nf4")));

    private readonly byte[] file;
    private readonly Dictionary<string, (string DType, long[] Shape, long Begin, long End)> entries = [];

    private Nf4Fixture(string directory)
    {
        file = File.ReadAllBytes(Path.Combine(directory, "nf4_cases.safetensors"));
        var headerLength = (int)BitConverter.ToUInt64(file, 0);
        using var header = JsonDocument.Parse(file.AsMemory(8, headerLength));
        foreach (var property in header.RootElement.EnumerateObject())
        {
            if (property.Name == "__metadata__")
            {
                continue;
            }

            var offsets = property.Value.GetProperty("data_offsets");
            entries[property.Name] = (
                property.Value.GetProperty("dtype").GetString()!,
                property.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(),
                8 + headerLength + offsets[0].GetInt64(),
                8 + headerLength + offsets[1].GetInt64());
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

    public string DType(string name) => entries[name].DType;

    public long[] Shape(string name) => entries[name].Shape;

    public ReadOnlySpan<byte> Bytes(string name)
    {
        var (_, _, begin, end) = entries[name];
        return file.AsSpan((int)begin, (int)(end - begin));
    }

    public float[] Floats(string name)
    {
        if (DType(name) != "F32")
        {
            throw new InvalidOperationException($"{name} is {DType(name)}, not F32.");
        }

        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Bytes(name)).ToArray();
    }

    /// <summary>The tensor with its stored dtype and shape.</summary>
    public TorchSharp.torch.Tensor Tensor(string name)
    {
        var dtype = DType(name) switch
        {
            "F32" => TorchSharp.torch.ScalarType.Float32,
            "F16" => TorchSharp.torch.ScalarType.Float16,
            "BF16" => TorchSharp.torch.ScalarType.BFloat16,
            "U8" => TorchSharp.torch.ScalarType.Byte,
            var other => throw new NotSupportedException(other),
        };
        var result = TorchSharp.torch.empty(Shape(name), dtype);
        Bytes(name).CopyTo(result.bytes);
        return result;
    }
}
