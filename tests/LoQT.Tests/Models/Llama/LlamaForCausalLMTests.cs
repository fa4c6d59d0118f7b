using LoQT.Models.Llama;
using LoQT.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Models.Llama;

/// <summary>Behaviour of the model beyond the golden forward: KV cache, padding, biases, RoPE scaling, and load errors.</summary>
public sealed class LlamaForCausalLMTests
{
    private static string TinyLlama => TestPaths.Fixture("tiny-llama");

    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-llama3-gqa")]
    public void KvCache_TokenByTokenForward_GivesTheFullForwardsLogits(string fixture)
    {
        using var golden = new GoldenFixture(fixture);
        using var model = LlamaForCausalLM.Load(golden.Directory);
        using var _ = no_grad();
        using var ids = golden.InputIds.narrow(0, 0, 1);
        using var full = model.Forward(ids);

        using var cache = model.CreateCache();
        var steps = new List<Tensor>();
        using (var prefix = model.Forward(ids.narrow(1, 0, 10), cache: cache))
        {
            steps.Add(prefix.Logits.clone());
        }

        for (var t = 10; t < ids.shape[1]; t++)
        {
            using var step = model.Forward(ids.narrow(1, t, 1), cache: cache);
            steps.Add(step.Logits.clone());
        }

        using var incremental = cat(steps, 1);
        steps.ForEach(s => s.Dispose());
        Assert.Equal(ids.shape[1], cache.Length);
        // Same F32 math; attention over a cache runs as a few smaller matmuls: rounding only.
        Assert.InRange(GoldenFixture.RelativeError(incremental, full.Logits), 0, 1e-5);
    }

    [Fact]
    public void RightPadding_IsMaskedOut_RealPositionsGetTheUnpaddedLogits()
    {
        using var golden = new GoldenFixture("tiny-llama");
        using var model = LlamaForCausalLM.Load(golden.Directory);
        using var _ = no_grad();
        const int shortLength = 15;
        using var longRow = golden.InputIds.narrow(0, 0, 1);
        using var shortRow = golden.InputIds.narrow(0, 1, 1).narrow(1, 0, shortLength);

        // Row 1 is padded with a real token id (7), so only the mask can keep it from being attended.
        using var batch = golden.InputIds.clone();
        batch[1, TensorIndex.Slice(shortLength)] = tensor(7L);
        using var mask = ones(2, 24, ScalarType.Int64);
        mask[1, TensorIndex.Slice(shortLength)] = tensor(0L);

        using var padded = model.Forward(batch, attentionMask: mask);
        using var alone = model.Forward(shortRow);
        using var longAlone = model.Forward(longRow);

        using var paddedShort = padded.Logits.narrow(0, 1, 1).narrow(1, 0, shortLength);
        using var paddedLong = padded.Logits.narrow(0, 0, 1);
        Assert.InRange(GoldenFixture.RelativeError(paddedShort, alone.Logits), 0, 1e-5);
        Assert.InRange(GoldenFixture.RelativeError(paddedLong, longAlone.Logits), 0, 1e-5);
        Assert.True(padded.Logits.isfinite().all().item<bool>(), "padding positions must stay finite");
    }

    [Fact]
    public void LeftPadding_WithPositionIds_GivesTheUnpaddedLogits()
    {
        using var golden = new GoldenFixture("tiny-llama");
        using var model = LlamaForCausalLM.Load(golden.Directory);
        using var _ = no_grad();
        const int pad = 5;
        using var row = golden.InputIds.narrow(0, 0, 1).narrow(1, 0, 24 - pad);
        using var padded = cat([full(1, pad, 7L, ScalarType.Int64), row], 1);
        using var mask = cat([zeros(1, pad, ScalarType.Int64), ones(1, 24 - pad, ScalarType.Int64)], 1);
        using var positions = (mask.cumsum(1) - 1).clamp_min(0);

        using var left = model.Forward(padded, attentionMask: mask, positionIds: positions);
        using var alone = model.Forward(row);

        using var real = left.Logits.narrow(1, pad, 24 - pad);
        Assert.InRange(GoldenFixture.RelativeError(real, alone.Logits), 0, 1e-5);
    }

    [Fact]
    public void Biases_AreLoadedAndApplied()
    {
        // Zero biases must give transformers' logits; non-zero ones must change them.
        using var golden = new GoldenFixture("tiny-llama");
        var config = LlamaConfig.Load(golden.Directory);
        using var zero = WithBiases(config, seed: null);
        using var random = WithBiases(config, seed: 3);
        using var zeroModel = LlamaForCausalLM.Load(zero.Directory);
        using var randomModel = LlamaForCausalLM.Load(random.Directory);
        using var _ = no_grad();

        using var withZero = zeroModel.Forward(golden.InputIds);
        using var withRandom = randomModel.Forward(golden.InputIds);

        Assert.Equal(7 * config.NumHiddenLayers, zeroModel.named_parameters().Count(p => p.name.EndsWith(".bias", StringComparison.Ordinal)));
        Assert.InRange(GoldenFixture.RelativeError(withZero.Logits, golden.Logits), 0, 1e-4);
        Assert.True(GoldenFixture.RelativeError(withRandom.Logits, golden.Logits) > 1e-2, "non-zero biases must change the logits");
    }

    [Fact]
    public void LinearRopeScaling_AtPositionP_IsTheUnscaledRotationAtPOverFactor()
    {
        var plain = LlamaConfig.Parse("""{"hidden_size": 64, "num_attention_heads": 4}""");
        var scaled = plain with { RopeScaling = new RopeScaling(RopeScaling.Linear, 4.0) };
        using var rotaryPlain = new LlamaRotaryEmbedding(plain, CPU);
        using var rotaryScaled = new LlamaRotaryEmbedding(scaled, CPU);
        using var positions = arange(0, 400, 4, ScalarType.Int64).unsqueeze(0);
        using var quartered = arange(0, 100, ScalarType.Int64).unsqueeze(0);

        var (cosScaled, sinScaled) = rotaryScaled.Compute(positions, ScalarType.Float32);
        var (cosPlain, sinPlain) = rotaryPlain.Compute(quartered, ScalarType.Float32);
        using (cosScaled)
        using (sinScaled)
        using (cosPlain)
        using (sinPlain)
        {
            // Position interpolation: angle = p * (f / 4) = (p / 4) * f; F32 products of different operands round differently.
            Assert.True(cosScaled.allclose(cosPlain, rtol: 0, atol: 1e-5));
            Assert.True(sinScaled.allclose(sinPlain, rtol: 0, atol: 1e-5));
        }
    }

    [Fact]
    public void Llama3RopeScaling_InverseFrequenciesFollowTheLlama31Formula()
    {
        var config = LlamaConfig.Load(TestPaths.Fixture("tiny-llama3-gqa"));
        using var rotary = new LlamaRotaryEmbedding(config, CPU);
        var actual = rotary.InverseFrequencies.data<float>().ToArray();
        var s = config.RopeScaling!;

        // transformers' _compute_llama3_parameters, in double precision.
        var lowWavelength = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        var highWavelength = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        for (var i = 0; i < actual.Length; i++)
        {
            var frequency = 1.0 / Math.Pow(config.RopeTheta, 2.0 * i / config.HeadDim);
            var wavelength = 2 * Math.PI / frequency;
            var smooth = ((s.OriginalMaxPositionEmbeddings / wavelength) - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
            var expected = wavelength < highWavelength ? frequency
                : wavelength > lowWavelength ? frequency / s.Factor
                : ((1 - smooth) * frequency / s.Factor) + (smooth * frequency);
            Assert.True(Math.Abs(actual[i] - expected) <= 1e-6 * expected, $"inv_freq[{i}] = {actual[i]}, expected {expected}");
        }

        Assert.Contains(actual.Select((f, i) => f / (1.0 / Math.Pow(config.RopeTheta, 2.0 * i / config.HeadDim))), r => r < 0.2);
    }

    [Theory]
    [InlineData(512L)]
    [InlineData(-1L)]
    public void Forward_TokenIdOutsideTheVocabulary_IsAnErrorNamingItAndTheVocabulary(long id)
    {
        using var model = LlamaForCausalLM.Load(TinyLlama);
        using var ids = tensor(new[] { 1L, id, 3L }, [1, 3]);

        var error = Assert.Throws<ArgumentException>(() => model.Forward(ids).Dispose());

        Assert.Contains($"token id {id}, outside the model's vocabulary of 512", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingTensor_NamesItAndTheShapeTheConfigNeeds()
    {
        using var edited = EditedCheckpoint.Create(TinyLlama, edit: (name, t) => name == "model.layers.1.mlp.up_proj.weight" ? [] : [(name, t)]);

        var error = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.Load(edited.Directory).Dispose());

        Assert.Contains("missing tensor 'model.layers.1.mlp.up_proj.weight' (config.json needs shape [172, 64])", error.Message, StringComparison.Ordinal);
        Assert.Contains(edited.Directory, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ShapeMismatch_NamesTheTensorAndBothShapes()
    {
        using var edited = EditedCheckpoint.Create(
            TinyLlama, edit: (name, t) => name == "model.layers.0.self_attn.k_proj.weight" ? [(name, t.narrow(0, 0, 32))] : [(name, t)]);

        var error = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.Load(edited.Directory).Dispose());

        Assert.Contains("tensor 'model.layers.0.self_attn.k_proj.weight' has shape [32, 64] in the checkpoint, but config.json needs [64, 64]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_UnexpectedTensor_NamesIt()
    {
        using var edited = EditedCheckpoint.Create(TinyLlama, extra: [("model.layers.2.mlp.up_proj.weight", zeros(172, 64))]);

        var error = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.Load(edited.Directory).Dispose());

        Assert.Contains("unexpected tensor 'model.layers.2.mlp.up_proj.weight' [172, 64]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ConfigWithBiasesButCheckpointWithout_NamesTheMissingBiases()
    {
        using var edited = EditedCheckpoint.Create(TinyLlama, config: c => c["mlp_bias"] = true);

        var error = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.Load(edited.Directory).Dispose());

        Assert.Contains("missing tensor 'model.layers.0.mlp.gate_proj.bias' (config.json needs shape [172])", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ListsEveryProblemAtOnce()
    {
        using var edited = EditedCheckpoint.Create(
            TinyLlama,
            edit: (name, t) => name is "model.norm.weight" or "lm_head.weight" ? [] : [(name, t)],
            extra: [("model.extra.weight", zeros(3))]);

        var error = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.Load(edited.Directory).Dispose());

        Assert.Contains("missing tensor 'model.norm.weight'", error.Message, StringComparison.Ordinal);
        Assert.Contains("missing tensor 'lm_head.weight'", error.Message, StringComparison.Ordinal);
        Assert.Contains("unexpected tensor 'model.extra.weight'", error.Message, StringComparison.Ordinal);
    }

    private static EditedCheckpoint WithBiases(LlamaConfig config, int? seed)
    {
        var generator = seed is { } s ? new Generator((ulong)s) : null;
        var biases = new List<(string, Tensor)>();
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            foreach (var (module, size) in new[]
                     {
                         ("self_attn.q_proj", config.HiddenSize), ("self_attn.k_proj", config.HiddenSize), ("self_attn.v_proj", config.HiddenSize),
                         ("self_attn.o_proj", config.HiddenSize), ("mlp.gate_proj", config.IntermediateSize), ("mlp.up_proj", config.IntermediateSize),
                         ("mlp.down_proj", config.HiddenSize),
                     })
            {
                biases.Add(($"model.layers.{layer}.{module}.bias", generator is null ? zeros(size) : randn([size], generator: generator) * 0.5));
            }
        }

        try
        {
            return EditedCheckpoint.Create(TinyLlama, extra: biases, config: c =>
            {
                c["attention_bias"] = true;
                c["mlp_bias"] = true;
            });
        }
        finally
        {
            generator?.Dispose();
        }
    }
}
