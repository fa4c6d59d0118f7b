using LoQT.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>
/// Predicts the peak memory of training a Llama model with LoQT or a baseline (design.md, "Memory model"):
/// weights, P, B, gradients, optimizer state, unquantized parameters, activations, the update-step transient and
/// the framework overhead.
/// </summary>
/// <remarks>
/// <para>
/// The parts are added up as if all were at their largest at once; where two phases cannot coincide (the optimizer
/// step after backward has freed the activations) only the larger counts. Exact sizes follow the storage formats;
/// everything an implementation decides is a named entry of <see cref="MemoryCoefficients"/>.
/// </para>
/// <para>
/// Assumptions: only the seven linear layers of each decoder layer (q, k, v, o, gate, up, down) are adapted,
/// quantized or projected; embeddings, norms, lm_head and biases stay in the compute dtype. Unquantized weights,
/// B, A, GaLore's P and all gradients are in the compute dtype (pure bf16 training, as the reference does with
/// <c>--dtype bfloat16</c>: no fp32 master copy). No activation checkpointing.
/// </para>
/// </remarks>
public sealed class MemoryPlanner
{
    /// <summary>Elements per NF4 absmax block (bitsandbytes' blocksize for 4-bit weights).</summary>
    public const int Nf4BlockSize = 64;

    /// <summary>Absmax values per block of the double quantization (bitsandbytes' nested blocksize).</summary>
    public const int Nf4NestedBlockSize = 256;

    /// <summary>Elements per block of 8-bit AdamW's moments (bitsandbytes' blockwise optimizer blocksize).</summary>
    public const int AdamW8bitBlockSize = 256;

    /// <summary>Tensors smaller than this keep fp32 moments under 8-bit AdamW (bitsandbytes' <c>min_8bit_size</c>).</summary>
    public const int AdamW8bitMinQuantizedElements = 4096;

    /// <summary>Creates a planner.</summary>
    /// <param name="coefficients">The implementation coefficients; <see cref="MemoryCoefficients.Default"/> when null.</param>
    public MemoryPlanner(MemoryCoefficients? coefficients = null)
    {
        Coefficients = coefficients ?? MemoryCoefficients.Default;
    }

    /// <summary>The coefficients this planner uses.</summary>
    public MemoryCoefficients Coefficients { get; }

    /// <summary>
    /// Bytes of one NF4-quantized tensor: two 4-bit codes per byte (odd counts padded by one code) plus one fp32
    /// absmax per block of 64 (0.5625 B per element); with double quantization one 8-bit absmax per block, one
    /// fp32 nested absmax per 256 blocks and the fp32 offset (≈ 0.5159 B per element). As <c>Nf4Tensor.StorageBytes</c>:
    /// the codebooks, shared by all tensors, are not counted.
    /// </summary>
    /// <param name="elements">Elements of the tensor.</param>
    /// <param name="doubleQuant">Whether the absmax values are themselves quantized.</param>
    public static long Nf4Bytes(long elements, bool doubleQuant)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        var packed = (elements + 1) / 2;
        var blocks = CeilDiv(elements, Nf4BlockSize);
        var absmax = doubleQuant ? blocks + 4 * CeilDiv(blocks, Nf4NestedBlockSize) + 4 : 4 * blocks;
        return packed + absmax;
    }

    /// <summary>
    /// Bytes of 8-bit AdamW's state for one tensor: the two moments at one byte per element, each with one fp32
    /// absmax per block of 256 (≈ 2.03 B per element, against 8 for fp32 AdamW); tensors of fewer than
    /// <see cref="AdamW8bitMinQuantizedElements"/> elements keep two fp32 moments (8 B per element).
    /// </summary>
    /// <param name="elements">Elements of the tensor.</param>
    public static long AdamW8bitStateBytes(long elements)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        return elements < AdamW8bitMinQuantizedElements
            ? 2 * 4 * elements
            : 2 * (elements + 4 * CeilDiv(elements, AdamW8bitBlockSize));
    }

    /// <summary>Bytes per element of a compute dtype.</summary>
    /// <param name="dtype">The dtype.</param>
    public static int DtypeBytes(ComputeDtype dtype) => dtype switch
    {
        ComputeDtype.BFloat16 => 2,
        ComputeDtype.Float32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown compute dtype."),
    };

    /// <summary>Plans a run for the model described by a Hugging Face <c>config.json</c>.</summary>
    /// <param name="configJson">The config text (e.g. from <c>LlamaPresets.ResolveConfigJson</c>).</param>
    /// <param name="options">The run.</param>
    /// <param name="source">Where the config came from, for error messages.</param>
    /// <exception cref="InvalidDataException">The config is not valid JSON or lacks a dimension.</exception>
    /// <exception cref="ArgumentException">The options do not fit the model (rank too large, sequence too long, …).</exception>
    public MemoryPlan Plan(string configJson, MemoryPlanOptions options, string source = "config.json")
    {
        ArgumentNullException.ThrowIfNull(configJson);
        return Plan(ModelShape.FromConfigJson(configJson, source), options);
    }

    internal MemoryPlan Plan(ModelShape model, MemoryPlanOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options = options with { Rank = options.Rank ?? DefaultRank(model) };
        Validate(model, options);

        var c = Coefficients;
        var method = options.Method;
        long s = DtypeBytes(options.Dtype);
        long r = options.Rank.GetValueOrDefault();
        long layers = model.NumHiddenLayers;
        var linears = model.LayerLinears;
        var loqtFamily = method is TrainingMethod.Loqt or TrainingMethod.LoqtNq;
        var quantizeW = options.QuantizeWeights && method is TrainingMethod.Loqt or TrainingMethod.Lora;
        var quantizeP = options.QuantizeProjection && method == TrainingMethod.Loqt;
        var dq = options.DoubleQuant;

        var weights = layers * linears.Sum(l => quantizeW ? Nf4Bytes(l.Elements, dq) : s * l.Elements);

        // The smaller side of each linear is projected: P is r × min(out, in), B is r × max(out, in)
        // (design.md's left/right rule; GaLore's "std" projection makes the same choice).
        var projections = method switch
        {
            TrainingMethod.Loqt or TrainingMethod.LoqtNq =>
                layers * linears.Sum(l => quantizeP ? Nf4Bytes(r * l.Small, dq) : s * r * l.Small),
            TrainingMethod.Galore => layers * linears.Sum(l => s * r * l.Small),
            _ => 0,
        };

        var adapters = method switch
        {
            TrainingMethod.Loqt or TrainingMethod.LoqtNq => layers * linears.Sum(l => s * r * l.Large),
            TrainingMethod.Lora => layers * linears.Sum(l => s * r * (l.In + l.Out)),
            _ => 0,
        };

        var nonQuantized = s * model.NonLinearParameters;

        // Trainable tensors as (count, elements): gradients exist for these; optimizer state for `states`.
        var trained = new List<(long Count, long Elements, bool IsAdapter)>();
        var states = new List<(long Count, long Elements)>();
        // What one optimizer step on a tensor holds at once besides its state (see the scratch coefficients).
        var stepScratchPerElement = options.Optimizer == OptimizerKind.AdamW8bit ? c.AdamW8bitStepScratchBytes : c.AdamWStepScratchBytes;
        var stepScratch = 0.0;
        foreach (var l in linears)
        {
            switch (method)
            {
                case TrainingMethod.Full:
                    Add(layers, l.Elements, l.Elements);
                    break;
                case TrainingMethod.Galore:
                    // Full-size gradient, state in the projected r × max(out, in) space; the step also writes the
                    // full-size update back (compute dtype).
                    trained.Add((layers, l.Elements, false));
                    states.Add((layers, r * l.Large));
                    stepScratch = Math.Max(stepScratch, stepScratchPerElement * Stepped(r * l.Large) + s * l.Elements);
                    break;
                case TrainingMethod.Loqt or TrainingMethod.LoqtNq:
                    Add(layers, r * l.Large, r * l.Large, isAdapter: true);
                    break;
                case TrainingMethod.Lora:
                    Add(layers, r * l.In, r * l.In);
                    Add(layers, l.Out * r, l.Out * r);
                    break;
            }
        }

        if (method == TrainingMethod.Full || options.TrainNonQuantizedParameters)
        {
            Add(1, model.EmbeddingParameters, model.EmbeddingParameters);
            if (model.LmHeadParameters > 0)
            {
                Add(1, model.LmHeadParameters, model.LmHeadParameters);
            }

            Add(2 * layers + 1, model.HiddenSize, model.HiddenSize);
            foreach (var l in linears.Where(model.HasBias))
            {
                Add(layers, l.Out, l.Out);
            }
        }

        var trainable = trained.Sum(t => t.Count * t.Elements);
        var largestTrained = trained.Count == 0 ? 0 : trained.Max(t => t.Elements);

        // Per-layer updates free each gradient right after its step: at most the largest one is alive.
        var gradients = options.PerLayerUpdates ? s * largestTrained : s * trainable;

        var optimizerState = options.Optimizer == OptimizerKind.AdamW8bit
            ? states.Sum(t => t.Count * AdamW8bitStateBytes(t.Elements))
            : (long)Math.Ceiling(2 * c.AdamWMomentBytes * states.Sum(t => t.Count * t.Elements));

        var headTrains = method == TrainingMethod.Full || options.TrainNonQuantizedParameters;
        var (activations, logitsBuffers) = Activations(model, options, s, loqtFamily || method == TrainingMethod.Lora, headTrains);
        var projectionUpdate = UpdateTransient(model, options, s, quantizeW);

        // A forward or backward matmul on an NF4 weight dequantizes it into a compute-dtype copy, one layer at a time.
        var maxLinear = linears.Max(l => l.Elements);
        var dequantizeScratch = options.Device == DeviceKind.Cuda ? c.DequantizeScratchBytesCuda : c.DequantizeScratchBytesCpu;
        var dequantize = quantizeW ? (long)Math.Ceiling((dequantizeScratch + s) * maxLinear) : 0;
        var step = (long)Math.Ceiling(stepScratch);
        // With per-layer updates the step runs inside backward, next to the activations; otherwise it runs after
        // backward has freed them, so its scratch only raises the peak by what it exceeds them.
        var workspace = options.PerLayerUpdates
            ? Math.Max(dequantize, step)
            : Math.Max(dequantize, step - activations);

        // LoQT re-initializes inside backward, where the loss's buffers are already freed and a re-initialization step
        // keeps no gradient (per-layer gradients are dropped; otherwise only the non-adapter ones accumulate) and
        // steps nothing: its peak is set against the ordinary step's, and only the excess counts.
        // The loss's fp32 buffers are freed before backward reaches any parameter: they only count by what they exceed the
        // gradients and update scratch that come after them.
        var layerActivations = activations - logitsBuffers;
        activations = layerActivations + Math.Max(0, logitsBuffers - (gradients + workspace));
        long updateTransient;
        if (loqtFamily)
        {
            var adapterGradients = s * trained.Where(t => t.IsAdapter).Sum(t => t.Count * t.Elements);
            var gradientsThen = options.PerLayerUpdates ? 0 : (s * trainable) - adapterGradients;
            var reinitialization = layerActivations + projectionUpdate + gradientsThen;
            updateTransient = Math.Max(0, reinitialization - (activations + gradients + workspace));
        }
        else
        {
            updateTransient = projectionUpdate;
        }

        var overhead = options.Device == DeviceKind.Cuda ? c.CudaOverheadBytes : c.CpuOverheadBytes;

        return new MemoryPlan(options, model.TotalParameters, trainable, new MemoryBreakdown
        {
            Weights = weights,
            Projections = projections,
            Adapters = adapters,
            NonQuantizedParameters = nonQuantized,
            Gradients = gradients,
            OptimizerState = optimizerState,
            Activations = activations,
            Workspace = workspace,
            UpdateTransient = updateTransient,
            Overhead = overhead,
        });

        void Add(long count, long gradientElements, long stateElements, bool isAdapter = false)
        {
            trained.Add((count, gradientElements, isAdapter));
            states.Add((count, stateElements));
            stepScratch = Math.Max(stepScratch, stepScratchPerElement * Stepped(stateElements));
        }

        long Stepped(long elements) =>
            c.OptimizerStepChunkElements > 0 ? Math.Min(elements, c.OptimizerStepChunkElements) : elements;
    }

    /// <summary>
    /// What autograd keeps for backward, per token, for the Llama decoder as transformers (eager) and the port
    /// compute it, with s the compute dtype's bytes; h hidden, f intermediate, H·d the attention width, T tokens:
    /// <list type="bullet">
    /// <item>Each RMSNorm (two per layer): the fp32 input that pow and mul save (4h; in fp32 this is the residual
    /// stream itself), the normalized values saved by the weight product (s·h), the output saved by the next
    /// linears (s·h), and rsqrt (4): (4 + 2s)·h + 4.</item>
    /// <item>Attention: q and k after RoPE and v (saved by the two matmuls; with grouped-query attention the
    /// repeated k and v copies instead), and the heads' output saved by o_proj: 4·s·H·d. RoPE saves only cos/sin.</item>
    /// <item>Explicit softmax: its fp32 output [H, T] per token (softmax backward needs it) and its compute-dtype
    /// cast saved by the value matmul: (4 + s)·H·T, or 4·H·T in fp32 where the cast is a no-op.</item>
    /// <item>SwiGLU MLP: gate (saved by SiLU), SiLU's output and up (saved by the product), the product (saved by
    /// down): 4·s·f.</item>
    /// <item>Low-rank methods: one [T, r] intermediate per adapted linear: 7·r·s.</item>
    /// </list>
    /// Plus the final norm, the fused head and loss (h's gradient, held; W's fp32 copy and gradient, and one chunk of
    /// fp32 logits, transient), and one more layer for the temporaries of the layer being computed or differentiated.
    /// Checked through TorchSharp-cpu (hidden 1024, 16 heads, 4 layers, T = 128 to 1024, bf16 and fp32): the RSS
    /// growth over a forward that keeps its graph matched this count plus a constant 12 to 15 MiB (counted in the
    /// overhead). It holds only if the forward frees what autograd does not save, as PyTorch's reference counting
    /// does; in TorchSharp that means a dispose scope per layer, else every intermediate lives until the step ends.
    /// </summary>
    private (long Total, long LogitsBuffers) Activations(ModelShape model, MemoryPlanOptions options, long s, bool lowRankPath, bool headTrains)
    {
        var c = Coefficients;
        double h = model.HiddenSize;
        double attentionWidth = (double)model.NumAttentionHeads * model.HeadDim;
        double heads = model.NumAttentionHeads;
        double t = options.SequenceLength;
        double tokens = (double)options.BatchSize * options.SequenceLength;

        var norm = (4 + 2 * s) * h + 4;
        var attention = 4 * s * attentionWidth;
        var scores = c.ExplicitAttention
            ? heads * t * (s == 4 ? 4 : 4 + s)
            : heads * 4; // fused attention: one fp32 log-sum-exp per head and token
        var mlp = 4 * s * (double)model.IntermediateSize;
        var lowRank = lowRankPath && c.SaveLowRankIntermediate ? model.LayerLinears.Count * (double)options.Rank.GetValueOrDefault() * s : 0;
        var perLayer = tokens * (2 * norm + attention + scores + mlp + lowRank);

        // The fused head and loss compute h's and W's gradients in the forward: h's (compute dtype) lives until backward
        // takes it; its other buffers are transient. W's gradient, once cast, is the head's gradient (counted with the
        // gradients), which is why the transient includes it: fp32 accumulator and cast coexist for a moment.
        double vocabulary = model.VocabSize;
        var hiddenGradient = tokens * h * s;
        var chunkBuffers = Math.Min(tokens, LinearCrossEntropy.ChunkRows(model.VocabSize)) * vocabulary * 4 * c.HeadChunkFp32Buffers;
        var headElements = vocabulary * h;
        var hiddenDtype = options.Dtype == ComputeDtype.Float32 ? ScalarType.Float32 : ScalarType.BFloat16;
        var productDtype = LinearCrossEntropy.ProductDtype(options.Device == DeviceKind.Cpu ? DeviceType.CPU : DeviceType.CUDA, hiddenDtype);
        var weightCopy = c.CountHeadWeightBuffers && productDtype != hiddenDtype ? 4 * headElements : 0; // the copy is fp32
        var gradientAccumulator = c.CountHeadWeightBuffers && headTrains ? 4 * headElements : 0;
        var gradientCast = c.CountHeadWeightBuffers && headTrains && s != 4 ? s * headElements : 0;
        var lossBuffers = weightCopy + gradientAccumulator + Math.Max(chunkBuffers, gradientCast);
        var total = (model.NumHiddenLayers + c.TransientLayers) * perLayer + tokens * norm + hiddenGradient + lossBuffers;
        return ((long)Math.Ceiling(total), (long)Math.Floor(lossBuffers));
    }

    /// <summary>
    /// The extra memory of an update step, for the worst linear of a layer (m × n; k = min(m, n), L = max(m, n)), as
    /// <c>LoqtLinear</c> re-initializes it inside backward, in two phases that follow each other:
    /// <list type="number">
    /// <item>Projection: the layer's full gradient G, accumulated in fp32 (4mn), and the SVD of the k × L matrix. A full
    /// thin SVD copies its input (4mn), returns U and Vᵀ (4k(m + n)) and needs LAPACK's workspace
    /// (<see cref="MemoryCoefficients.SvdWorkspaceSquareMatrices"/>·4k²). The randomized range finder with w = r +
    /// oversampling columns holds the Gaussian test matrix, the last power iteration's L × w product, the w × L
    /// projected matrix and its Vᵀ (4·4wL), the k × w bases (3·4wk) and the small SVD's workspace.</item>
    /// <item>Merge and error compensation, after G is freed: the merged fp32 W (4mn) and, per iteration, the residual and
    /// the low-rank product (<see cref="MemoryCoefficients.ErrorCompensationMatrices"/> fp32 matrices with W) plus the
    /// NF4 codes of the iteration and of the best one, that iteration's B and the best B (fp32, r × L) and P with P⁺
    /// (fp32, r × k); merging alone holds deq(W) and the product (8mn).</item>
    /// </list>
    /// GaLore's gradient already exists (counted under gradients): it pays an fp32 copy (none in fp32) and the SVD.
    /// </summary>
    private long UpdateTransient(ModelShape model, MemoryPlanOptions options, long s, bool quantizeW)
    {
        if (options.Method is not (TrainingMethod.Loqt or TrainingMethod.LoqtNq or TrainingMethod.Galore))
        {
            return 0;
        }

        var c = Coefficients;
        var worst = 0.0;
        double r = options.Rank.GetValueOrDefault();
        foreach (var l in model.LayerLinears)
        {
            double mn = l.Elements;
            double k = l.Small;
            double large = l.Large;
            double svd;
            if (options.Svd.Kind == LoQT.Loqt.SvdKind.Randomized)
            {
                var w = Math.Min(r + options.Svd.Oversampling, k);
                svd = (4 * 4 * w * large) + (3 * 4 * w * k) + (4 * c.SvdWorkspaceSquareMatrices * w * w);
            }
            else
            {
                svd = (4 * mn) + (4 * k * ((double)l.Out + l.In)) + (4 * c.SvdWorkspaceSquareMatrices * k * k);
            }

            if (options.Method == TrainingMethod.Galore)
            {
                worst = Math.Max(worst, (s == 4 ? 0 : 4 * mn) + svd);
                continue;
            }

            var projection = (4 * mn) + svd;
            var merge = 8 * mn;
            if (options.Method == TrainingMethod.Loqt && quantizeW)
            {
                // Besides the full-size matrices: the NF4 codes of the iteration and of the best one, B of the iteration
                // and the best B (r × L, fp32), and P and P⁺ (r × k, fp32).
                var codes = Nf4Bytes(l.Elements, options.DoubleQuant);
                merge = Math.Max(merge, options.ErrorCompensationIterations > 0
                    ? (4 * c.ErrorCompensationMatrices * mn) + (2 * codes) + (4 * 2 * r * large) + (4 * 2 * r * k)
                    : (8 * mn) + codes);
            }

            worst = Math.Max(worst, Math.Max(projection, merge));
        }

        return (long)Math.Ceiling(worst);
    }

    /// <summary>The reference's default rank (128), capped at a quarter of the hidden size for narrow models.</summary>
    private static int DefaultRank(ModelShape model) => Math.Max(1, Math.Min(128, model.HiddenSize / 4));

    private static void Validate(ModelShape model, MemoryPlanOptions options)
    {
        if (options.BatchSize < 1)
        {
            throw new ArgumentException($"Batch size must be at least 1 (got {options.BatchSize}).", nameof(options));
        }

        if (options.SequenceLength < 1)
        {
            throw new ArgumentException($"Sequence length must be at least 1 (got {options.SequenceLength}).", nameof(options));
        }

        if (options.SequenceLength > model.MaxPositionEmbeddings)
        {
            throw new ArgumentException(
                $"Sequence length {options.SequenceLength} exceeds the model's max_position_embeddings ({model.MaxPositionEmbeddings}).",
                nameof(options));
        }

        if (options.Method == TrainingMethod.Full)
        {
            return;
        }

        var narrowest = model.LayerLinears.MinBy(l => l.Small)!;
        if (options.Rank < 1 || options.Rank >= narrowest.Small)
        {
            throw new ArgumentException(
                $"Rank {options.Rank} is out of range for this model: it must be at least 1 and smaller than the smaller " +
                $"side of every adapted linear ({narrowest.Name} is {narrowest.Out}×{narrowest.In}, so at most {narrowest.Small - 1}).",
                nameof(options));
        }
    }

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
