using LoQT.Quantization;
using LoQT.Training;
using AdamW = LoQT.Training.AdamW;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace LoQT.Tests.Training;

/// <summary>8-bit AdamW: bitsandbytes' state quantization, and that it tracks fp32 AdamW.</summary>
public sealed class AdamW8BitTests
{
    [Fact]
    public void OnALeastSquaresProblem_TracksFp32AdamW()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(2);
        var x = randn([256, 128], generator: generator);
        var truth = randn([64, 128], generator: generator);
        var y = x.matmul(truth.t());
        var start = zeros(64, 128); // 8192 elements: above min_8bit_size, so the moments are 8-bit
        var options = new AdamWOptions { LearningRate = 5e-2 };

        var (p32, losses32) = Train(start, x, y, p => new AdamW([new TrainableParameter("p", p)], options));
        var (p8, losses8) = Train(start, x, y, p => new AdamW8Bit([new TrainableParameter("p", p)], options));

        // Blockwise 8-bit moments are off by about 1% of their block's absmax (the dynamic map's step near the top of
        // its range is 1/64–1/128 of a decade); Adam's normalized step turns that into direction errors of a few percent
        // that partly average out over steps. So: within 10% of the distance the fp32 run moved, and losses within 10%
        // (plus 1% of the starting loss: near the optimum the 8-bit states' noise floor dominates any relative
        // comparison), while both descend by well over an order of magnitude.
        var moved = (p32 - start).norm().item<float>();
        Assert.True((p8 - p32).norm().item<float>() < 0.1 * moved, $"‖p8 − p32‖ = {(p8 - p32).norm().item<float>()}, moved {moved}");
        for (var t = 0; t < losses32.Count; t++)
        {
            Assert.True(Math.Abs(losses8[t] - losses32[t]) <= (0.1 * losses32[t]) + (0.01 * losses32[0]), $"step {t}: {losses8[t]} vs {losses32[t]}");
        }

        Assert.True(losses32[^1] < 0.02 * losses32[0], $"fp32 loss {losses32[0]} → {losses32[^1]}, 8-bit {losses8[^1]}");
    }

    [Fact]
    public void Moments_AreSignedAndUnsignedDynamic8BitCodesInBlocksOf256()
    {
        using var scope = NewDisposeScope();
        const int n = 1000; // three full blocks and a short one
        var g = randn(n, generator: new Generator(3)) * 0.01;
        var p = new Parameter(zeros(n));
        var options = new AdamWOptions { LearningRate = 1e-3 };
        using var adam = new AdamW8Bit([new TrainableParameter("p", p)], options, minQuantizedSize: 0);

        p.grad = g.clone();
        adam.Step();
        using var state = adam.ExportState();

        // After one step from zero: m = (1 − β1)·g, v = (1 − β2)·g², quantized as bitsandbytes does.
        var m = (g * (1 - options.Beta1)).data<float>().ToArray();
        var v = (g * g * (1 - options.Beta2)).data<float>().ToArray();
        AssertBlockwise(m, state.Tensors["p.exp_avg.codes"], state.Tensors["p.exp_avg.absmax"], DynamicQuantMap.Signed);
        AssertBlockwise(v, state.Tensors["p.exp_avg_sq.codes"], state.Tensors["p.exp_avg_sq.absmax"], DynamicQuantMap.Unsigned);
        Assert.Equal(1, state.Scalars["p.step"]);
    }

    [Fact]
    public void FirstStep_EqualsAdamWsFirstStep()
    {
        // bitsandbytes updates from the fp32 moments before requantizing them, so step 1 is exact:
        // lr·√(1 − β2)/(1 − β1)·m/(√v + ε√(1 − β2)) = lr·g/(|g| + ε), as PyTorch's AdamW.
        using var scope = NewDisposeScope();
        var g = randn(5000, generator: new Generator(4));
        var p8 = new Parameter(ones(5000));
        var p32 = new Parameter(ones(5000));
        var options = new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.1 };
        using var adam8 = new AdamW8Bit([new TrainableParameter("p", p8)], options);
        using var adam32 = new AdamW([new TrainableParameter("p", p32)], options);

        p8.grad = g.clone();
        p32.grad = g.clone();
        adam8.Step();
        adam32.Step();

        Assert.True((p8 - p32).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void SmallParameters_KeepFp32Moments()
    {
        using var scope = NewDisposeScope();
        var small = new Parameter(zeros(AdamW8Bit.DefaultMinQuantizedSize - 1));
        var large = new Parameter(zeros(AdamW8Bit.DefaultMinQuantizedSize));
        using var adam = new AdamW8Bit([new TrainableParameter("small", small), new TrainableParameter("large", large)]);
        small.grad = ones(small.shape);
        large.grad = ones(large.shape);

        adam.Step();
        using var state = adam.ExportState();

        Assert.Equal(ScalarType.Float32, state.Tensors["small.exp_avg"].dtype);
        Assert.Equal(ScalarType.Byte, state.Tensors["large.exp_avg.codes"].dtype);
        Assert.False(state.Tensors.ContainsKey("large.exp_avg"));
    }

    private static (Tensor Final, List<double> Losses) Train(Tensor start, Tensor x, Tensor y, Func<Parameter, AdamWOptimizer> create)
    {
        var p = new Parameter(start.clone());
        using var optimizer = create(p);
        var losses = new List<double>();
        for (var step = 0; step < 150; step++)
        {
            var loss = (x.matmul(p.t()) - y).square().mean();
            losses.Add(loss.item<float>());
            loss.backward();
            optimizer.Step();
        }

        return (p.detach().clone(), losses);
    }

    /// <summary>
    /// Checks bitsandbytes' blockwise quantization independently: each block of 256 stores max |x| as its absmax, and
    /// each code is a map entry nearest to x/absmax (ties may go either way, so the chosen entry's error is compared
    /// with the smallest error over all 256 entries).
    /// </summary>
    private static void AssertBlockwise(float[] values, Tensor codes, Tensor absmax, float[] map)
    {
        Assert.Equal(ScalarType.Byte, codes.dtype);
        Assert.Equal(values.Length, codes.numel());
        Assert.Equal((values.Length + 255) / 256, absmax.numel());
        var codeArray = codes.data<byte>().ToArray();
        var absmaxArray = absmax.data<float>().ToArray();
        for (var block = 0; block < absmaxArray.Length; block++)
        {
            var slice = values.Skip(block * 256).Take(256).ToArray();
            var largest = slice.Max(Math.Abs);
            Assert.True(Math.Abs(largest - absmaxArray[block]) <= 1e-6 * largest, $"block {block}: absmax {absmaxArray[block]}, max |x| {largest}"); // (1 − β) rounds differently here
            for (var i = 0; i < slice.Length; i++)
            {
                var scaled = slice[i] / absmaxArray[block];
                var best = map.Min(e => Math.Abs(e - scaled));
                var chosen = Math.Abs(map[codeArray[(block * 256) + i]] - scaled);
                Assert.True(chosen <= best + 1e-7, $"block {block} element {i}: code {codeArray[(block * 256) + i]} is {chosen} away, the nearest {best}");
            }
        }
    }
}
