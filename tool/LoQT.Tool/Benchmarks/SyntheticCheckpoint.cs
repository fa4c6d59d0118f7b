using LoQT.Models.Llama;
using LoQT.SafeTensors;
using TorchSharp;

namespace LoQT.Tool.Benchmarks;

/// <summary>
/// Writes a Hugging Face Llama checkpoint of any shape with pseudo-random weights, for loading benchmarks: tensor by tensor,
/// sharded like <c>save_pretrained</c>, each tensor's bytes streamed from a small repeating block of N(0, 0.02) values,
/// so neither the generator nor the writer ever holds a tensor in memory.
/// </summary>
internal static class SyntheticCheckpoint
{
    private const int PatternElements = 1 << 20;

    /// <summary>Writes <c>config.json</c> and the safetensors of <paramref name="config"/> into <paramref name="directory"/>.</summary>
    /// <returns>The bytes of tensor data written.</returns>
    public static long Write(string directory, LlamaConfig config, SafeTensorDType dtype, long maxShardBytes, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        if (dtype is not (SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.F32))
        {
            throw new ArgumentException($"synthetic checkpoints are F16, BF16 or F32, not {dtype.ToHeaderName()}", nameof(dtype));
        }

        Directory.CreateDirectory(directory);
        var pattern = Pattern(dtype);
        var tensors = config.CheckpointTensors();
        using (var writer = new ShardedSafeTensorsWriter(directory, maxShardBytes, metadata: new Dictionary<string, string> { ["format"] = "pt" }))
        {
            for (var i = 0; i < tensors.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var tensor = tensors[i];
                var bytes = tensor.ElementCount * dtype.ElementSize();
                using var data = new RepeatingStream(pattern, bytes, first: (i * 4099L * dtype.ElementSize()) % pattern.Length);
                writer.Add(tensor.Name, dtype, tensor.Shape.ToArray(), data);
                if (tensor.Name.EndsWith("post_attention_layernorm.weight", StringComparison.Ordinal) || i == tensors.Count - 1)
                {
                    log?.Invoke($"generated {i + 1}/{tensors.Count} tensors ({tensor.Name})");
                }
            }

            log?.Invoke("writing shards");
            writer.Complete();
        }

        (config with { TorchDType = dtype switch { SafeTensorDType.F16 => "float16", SafeTensorDType.BF16 => "bfloat16", _ => "float32" } })
            .Save(directory);
        return tensors.Sum(t => t.ElementCount * dtype.ElementSize());
    }

    private static byte[] Pattern(SafeTensorDType dtype)
    {
        using var generator = new torch.Generator(20240601);
        using var values = torch.randn([PatternElements], generator: generator).mul_(0.02);
        using var typed = values.to_type(dtype.ToScalarType());
        return typed.bytes.ToArray();
    }

    /// <summary>A read-only stream of <c>length</c> bytes cycling through <c>pattern</c> from byte <c>first</c>.</summary>
    private sealed class RepeatingStream(byte[] pattern, long length, long first) : Stream
    {
        private long position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var total = (int)Math.Min(buffer.Length, length - position);
            var done = 0;
            while (done < total)
            {
                var at = (int)((first + position + done) % pattern.Length);
                var run = Math.Min(total - done, pattern.Length - at);
                pattern.AsSpan(at, run).CopyTo(buffer[done..]);
                done += run;
            }

            position += total;
            return total;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
