namespace LoQT.Training;

/// <summary>
/// Every number the memory planner assumes that is not fixed by a file format: what an implementation keeps alive
/// and how large it is. Kept together so that they can be calibrated against measured peaks (<c>loqt bench memory</c>).
/// </summary>
/// <remarks>
/// Format facts (NF4 packing and block sizes, 8-bit block size) are not here: they are exact, see
/// <see cref="MemoryPlanner.Nf4Bytes"/> and <see cref="MemoryPlanner.AdamW8bitStateBytes"/>.
/// </remarks>
public sealed record MemoryCoefficients
{
    /// <summary>The coefficients as derived and measured when the planner was written.</summary>
    public static MemoryCoefficients Default { get; } = new();

    /// <summary>
    /// Bytes of each AdamW moment per element: 4, because the moments are fp32 whatever the parameter dtype
    /// (design.md: 2 × 4 B per trainable parameter).
    /// </summary>
    public double AdamWMomentBytes { get; init; } = 4;

    /// <summary>
    /// Whether attention is computed with an explicit softmax (HF "eager"), so that autograd keeps the [B, H, T, T]
    /// probabilities. True: that is what the Llama port does (design.md: "causal softmax in fp32"). False models a
    /// fused kernel (scaled_dot_product_attention) that keeps only a log-sum-exp per head and token.
    /// </summary>
    public bool ExplicitAttention { get; init; } = true;

    /// <summary>
    /// Whether the low-rank path saves its [tokens, rank] intermediate (x·Pᵀ, x·Bᵀ or x·Aᵀ) for backward, one per
    /// adapted linear, as plain autograd would. False: <c>LowRankLinearFunction</c> saves only x and the trainable
    /// factor, and recomputes the intermediate (and a quantized P) in backward.
    /// </summary>
    public bool SaveLowRankIntermediate { get; init; }

    /// <summary>
    /// fp32 [rows, vocab] buffers alive per row chunk of the fused output head and loss (<c>LinearCrossEntropy</c>,
    /// which never holds the whole [B·T, vocab] logits): the chunk's logits, turned in place into their gradient.
    /// </summary>
    public double HeadChunkFp32Buffers { get; init; } = 1;

    /// <summary>
    /// Whether the fused head's [vocab, hidden] tensors count, alive across its forward: the fp32 copy of W its CPU
    /// products use (none in fp32 or on CUDA), the fp32 accumulator of W's gradient and that gradient's cast to the
    /// compute dtype (when W trains). For 7b in bf16 on the CPU that is 1.3 GB at the end of the forward, when every
    /// layer's activations are alive; a 130m run measured 133 MiB above a plan that counted only unfused logits.
    /// </summary>
    public bool CountHeadWeightBuffers { get; init; } = true;

    /// <summary>
    /// Extra decoder layers' worth of activations at the peak: the last layer's forward temporaries (raw and masked
    /// scores, the fp32 upcast, RoPE terms) or the gradients flowing through the layer being differentiated.
    /// Measured through TorchSharp-cpu for a 1024-wide layer: the forward peak exceeded the saved activations by
    /// 0.97 to 1.17 layers (bf16, and fp32 up to T = 256; fp32 at T = 1024 reached 1.7 layers), and backward never
    /// rose above the end of forward by more than the weight gradients it created.
    /// </summary>
    public double TransientLayers { get; init; } = 1;

    /// <summary>
    /// Bytes per element of scratch, besides the compute-dtype result, while one NF4 weight is dequantized for a
    /// matmul on the CPU: none, because <c>Nf4Tensor.Dequantize</c>'s CPU kernel writes the result directly (the
    /// double-quantized absmax it expands first is 4 bytes per 64 elements, ignored).
    /// </summary>
    public double DequantizeScratchBytesCpu { get; init; }

    /// <summary>
    /// Bytes per element of scratch, besides the result, while one NF4 weight is dequantized on CUDA by the torch-ops
    /// path (<c>Nf4TorchOps.Dequantize4Bit</c>), which keeps until it returns: the packed bytes as int64 (4), the high
    /// and low nibbles (4 + 4), the stacked indices (8), the fp32 code values (4) and the scaled values (4).
    /// </summary>
    public double DequantizeScratchBytesCuda { get; init; } = 28;

    /// <summary>
    /// Bytes per element of temporaries while AdamW steps one tensor: an fp32 copy of the gradient (4) and two fp32
    /// intermediates of the update (denominator, step: 8).
    /// </summary>
    public double AdamWStepScratchBytes { get; init; } = 12;

    /// <summary>
    /// Bytes per element of temporaries while 8-bit AdamW steps one tensor: an fp32 copy of the gradient (4), the two
    /// moments dequantized to fp32 (8) and one fp32 intermediate of the update (4).
    /// </summary>
    public double AdamW8bitStepScratchBytes { get; init; } = 16;

    /// <summary>
    /// Elements an optimizer step processes at once, which bounds its scratch; 0 means whole tensors. A step that
    /// walks a large tensor (the 131M-element embedding of 7b) in chunks keeps its scratch to the chunk's size.
    /// </summary>
    public long OptimizerStepChunkElements { get; init; } = AdamWOptimizer.UpdateSliceElements;

    /// <summary>
    /// fp32 square matrices (k × k, k = the smaller side) of LAPACK workspace for the thin SVD of a gradient
    /// (sgesdd with JOBZ='S' asks for about 4k² + 7k floats), besides the input copy it destroys and U, Vᵀ.
    /// Measured with torch.linalg.svd through TorchSharp-cpu on 1024×2752, 2048×2048, 2048×5504 and 5504×2048
    /// fp32 matrices: peak RSS minus (mn + k(m + n))·4 was 3.4 to 4.7 k²·4; 5 covers the tall case.
    /// </summary>
    public double SvdWorkspaceSquareMatrices { get; init; } = 5;

    /// <summary>
    /// Full-size fp32 matrices alive during an error-compensation iteration: the merged weight W, the residual
    /// W − deq(Q) (formed in deq(Q)'s buffer) and the low-rank product α·B·P (which becomes the next W − α·B·P in
    /// place); the error is summed in row slices and the previous iterate is freed once quantized
    /// (<c>ErrorCompensation.Run</c>).
    /// </summary>
    public double ErrorCompensationMatrices { get; init; } = 3;

    /// <summary>
    /// Resident memory of the process besides tensors: .NET runtime (24.7 MB for an empty app), libtorch and
    /// TorchSharp loaded (142.7 MB), one tiny op (151.4 MB), a bf16 matmul with autograd and a small SVD
    /// (165.0 MB peak RSS), then ≈ 12 to 15 MiB more on the first forward through real layer shapes (constant from
    /// T = 128 to 1024: kernel and thread caches). TorchSharp-cpu 0.107 (libtorch 2.10), x86-64 Debian 12.
    /// </summary>
    public long CpuOverheadBytes { get; init; } = 240L << 20;

    /// <summary>
    /// GPU memory taken besides tensors on CUDA: the CUDA context with libtorch's kernels, the cuBLAS workspace and
    /// the cuSOLVER handle. Measured (nvidia-smi, per process) with PyTorch 2.11 + CUDA 13.0 on an H100 80GB, driver
    /// 580: 710 MiB after one tiny op, 924 MiB after a bf16 matmul with autograd and an SVD, of which 86 MiB was
    /// the caching allocator's reserve. No CUDA build of TorchSharp is available to measure it through .NET; the
    /// context size varies with the GPU, the driver and CUDA's lazy module loading.
    /// </summary>
    public long CudaOverheadBytes { get; init; } = 850L << 20;
}
