using LoQT.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Tests.Native;

public sealed class GemmTests
{
    // A bf16 product is rounded once to 8 significant bits: |error| ≤ 2⁻⁸·|value|. Two bf16 GEMMs that accumulate in
    // fp32 in different orders may round to neighbouring values, so they agree within 2 such ulps, plus an absolute
    // floor for near-zero entries (sums of 64 products of unit-normal numbers are O(8); 1e-2 is far below that).
    private const double Bf16Relative = 2.0 / 256;
    private const double Bf16Absolute = 1e-2;

    public GemmTests() => LibTorch.EnsureLoaded();

    [Fact]
    public void UpcastMatMul_AgreesWithLibtorchsBf16MatMulWithinBf16Rounding()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var a = randn(48, 64).to(ScalarType.BFloat16);
        var b = randn(64, 40).to(ScalarType.BFloat16);

        var upcast = Gemm.MatMul(a, b, upcast: true);
        var native = a.matmul(b);

        Assert.Equal(ScalarType.BFloat16, upcast.dtype);
        AssertBf16Close(native, upcast);
    }

    [Fact]
    public void UpcastLinear_WithBias_AgreesWithLibtorchsBf16Linear()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var x = randn(2, 5, 64).to(ScalarType.BFloat16);
        var w = randn(24, 64).to(ScalarType.BFloat16);
        var bias = randn(24).to(ScalarType.BFloat16);

        var upcast = Gemm.Linear(x, w, bias, upcast: true);

        Assert.Equal(new long[] { 2, 5, 24 }, upcast.shape);
        Assert.Equal(ScalarType.BFloat16, upcast.dtype);
        AssertBf16Close(nn.functional.linear(x, w, bias), upcast);
    }

    [Fact]
    public void UpcastLinear_TakesAnFp32WeightForABf16InputAndAnswersInBf16()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var x = randn(7, 32).to(ScalarType.BFloat16);
        var w = randn(16, 32).to(ScalarType.BFloat16);

        var mixed = Gemm.Linear(x, w.to(ScalarType.Float32), null, upcast: true);

        Assert.Equal(ScalarType.BFloat16, mixed.dtype);
        Assert.True(mixed.eq(Gemm.Linear(x, w, null, upcast: true)).all().item<bool>());
    }

    [Fact]
    public void UpcastMatMul_PassesGradientsBackInTheOperandsDtypes()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var a = randn(8, 16).to(ScalarType.BFloat16).requires_grad_();
        var b = randn(16, 4).to(ScalarType.BFloat16).requires_grad_();

        Gemm.MatMul(a, b, upcast: true).sum().backward();

        Assert.Equal(ScalarType.BFloat16, a.grad!.dtype);
        Assert.Equal(ScalarType.BFloat16, b.grad!.dtype);
        // d(sum(a·b))/da = 1·bᵀ: every row of a's gradient is the row sums of b.
        AssertBf16Close(b.sum(1).unsqueeze(0).expand(8, 16), a.grad!);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float16)]
    public void OperandDtype_LeavesOtherDtypesAlone(ScalarType dtype)
    {
        Assert.Equal(dtype, Gemm.OperandDtype(dtype, CPU));
    }

    [Fact]
    public void OperandDtype_OfCpuBf16_IsFp32ExactlyWhenTheCpuHasNoFastBf16Gemm()
    {
        var expected = Gemm.CpuHasFastBf16 ? ScalarType.BFloat16 : ScalarType.Float32;

        Assert.Equal(expected, Gemm.OperandDtype(ScalarType.BFloat16, CPU));
    }

    [Fact]
    public void MatMul_OfFp32Operands_IsLibtorchsMatMul()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var a = randn(9, 12);
        var b = randn(12, 3);

        Assert.True(Gemm.MatMul(a, b).eq(a.matmul(b)).all().item<bool>());
    }

    private static void AssertBf16Close(Tensor expected, Tensor actual)
    {
        var e = expected.to(ScalarType.Float32);
        var a = actual.to(ScalarType.Float32);
        var bound = e.abs().mul(Bf16Relative).add(Bf16Absolute);
        var worst = (a - e).abs().sub(bound).max().item<float>();
        Assert.True(worst <= 0, $"bf16 products differ by {worst} beyond the bound");
    }
}
