using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Loqt;

/// <summary>One layer a <see cref="LoqtLinearFactory"/> made.</summary>
/// <param name="Name">The layer's name.</param>
/// <param name="Layer">The module.</param>
/// <param name="Targeted">Whether the method applied (false: a plain trainable dense layer).</param>
public sealed record CreatedLinear(string Name, nn.Module<Tensor, Tensor> Layer, bool Targeted);

/// <summary>
/// Makes the linear layers for a training method: <see cref="LoqtLinear"/> for <c>loqt</c> and <c>loqt-nq</c>,
/// <see cref="LoraLinear"/> for <c>lora</c>, <see cref="TrainableDenseLinear"/> for <c>full</c> and <c>galore</c> (GaLore
/// lives in the optimizer: see <see cref="GaLoreWeights"/>). Layers the method does not target become trainable dense
/// layers.
/// </summary>
public sealed class LoqtLinearFactory
{
    private readonly List<CreatedLinear> layers = [];
    private readonly Func<string, bool> isTarget;
    private readonly BackwardResultRelease release = new();
    private IParameterUpdateSink? updateSink;
    private ITimingSink? timingSink;

    /// <summary>Creates the factory and checks the options.</summary>
    /// <param name="method">The training method.</param>
    /// <param name="options">
    /// Layer options. For <c>loqt-nq</c> W and P are never quantized; for <c>full</c> and <c>galore</c> the
    /// quantization switches do not apply.
    /// </param>
    /// <param name="isTarget">Which layer names the method applies to; null: <see cref="IsDefaultTarget"/>.</param>
    /// <exception cref="ArgumentException">An option is out of range (the option is named).</exception>
    public LoqtLinearFactory(LoqtMethod method, LoqtOptions options, Func<string, bool>? isTarget = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Enum.IsDefined(method))
        {
            throw new ArgumentException($"Unknown method {(int)method} for method: expected one of {string.Join(", ", LoqtMethodNames.All)}.", nameof(method));
        }

        options.Validate();
        Method = method;
        Options = method == LoqtMethod.LoqtNoQuantization ? options with { QuantizeWeight = false, QuantizeProjection = false } : options;
        this.isTarget = isTarget ?? IsDefaultTarget;
    }

    /// <summary>The training method.</summary>
    public LoqtMethod Method { get; }

    /// <summary>The effective layer options.</summary>
    public LoqtOptions Options { get; }

    /// <summary>The layers made so far, in order.</summary>
    public IReadOnlyList<CreatedLinear> Layers => layers;

    /// <summary>The LoQT layers made so far.</summary>
    public IEnumerable<LoqtLinear> LoqtLayers => layers.Select(l => l.Layer).OfType<LoqtLinear>();

    /// <summary>
    /// The dense weights GaLore projects (targeted layers of the <c>galore</c> method), with their names
    /// (<c>{layer}.weight</c>); empty for other methods.
    /// </summary>
    public IEnumerable<(string Name, Parameter Weight)> GaLoreWeights =>
        Method != LoqtMethod.GaLore
            ? []
            : layers.Where(l => l.Targeted && l.Layer is TrainableDenseLinear).Select(l => (l.Name + ".weight", ((TrainableDenseLinear)l.Layer).Weight));

    /// <summary>Where every layer (made before or after) reports gradients and re-initializations; null for plain autograd.</summary>
    public IParameterUpdateSink? UpdateSink
    {
        get => updateSink;
        set
        {
            updateSink = value;
            foreach (var layer in layers)
            {
                ApplySinks(layer.Layer);
            }
        }
    }

    /// <summary>
    /// Where every layer (made before or after) reports the time of dequantization, full gradients, SVD and error
    /// compensation; null (the default) times nothing.
    /// </summary>
    public ITimingSink? TimingSink
    {
        get => timingSink;
        set
        {
            timingSink = value;
            foreach (var layer in layers)
            {
                ApplySinks(layer.Layer);
            }
        }
    }

    /// <summary>
    /// The reference's targets (<c>target_modules=["attn", "attention", "mlp"]</c>): names that contain <c>attn</c>,
    /// <c>attention</c> or <c>mlp</c> (every projection of a Llama decoder layer, not <c>lm_head</c>).
    /// </summary>
    /// <param name="name">The layer's name.</param>
    public static bool IsDefaultTarget(string name) =>
        name.Contains("attn", StringComparison.Ordinal) || name.Contains("attention", StringComparison.Ordinal) || name.Contains("mlp", StringComparison.Ordinal);

    /// <summary>
    /// Checks a layer's shape against the options before any work (rank below min(in, out) for targeted layers of the
    /// low-rank methods).
    /// </summary>
    /// <param name="name">The layer's name.</param>
    /// <param name="inFeatures">Columns of its weight.</param>
    /// <param name="outFeatures">Rows of its weight.</param>
    /// <exception cref="ArgumentOutOfRangeException">The rank does not fit (option <c>rank</c>).</exception>
    public void ValidateLayer(string name, long inFeatures, long outFeatures)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (Method != LoqtMethod.Full && isTarget(name))
        {
            Options.ValidateFor(inFeatures, outFeatures, name);
        }
    }

    /// <summary>Makes the layer for <paramref name="name"/> from its full-precision weight.</summary>
    /// <param name="name">The layer's name (e.g. <c>model.layers.0.self_attn.q_proj</c>).</param>
    /// <param name="weight">W, [out, in] (copied or quantized; not kept).</param>
    /// <param name="bias">Optional bias, [out].</param>
    /// <param name="computeDType">Overrides <see cref="LoqtOptions.ComputeDType"/> for this layer when given.</param>
    /// <param name="device">Where the layer lives; the weight's device when null.</param>
    /// <exception cref="ArgumentException">The shapes or the rank do not fit (the option is named).</exception>
    public nn.Module<Tensor, Tensor> Create(string name, Tensor weight, Tensor? bias, ScalarType? computeDType = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(weight);
        var options = computeDType is { } dtype && dtype != Options.ComputeDType ? Options with { ComputeDType = dtype } : Options;
        options.Validate();
        using var scope = NewDisposeScope();
        var w = device is null || weight.device == device ? weight : weight.to(device);
        var b = bias is null || device is null || bias.device == device ? bias : bias.to(device);
        var targeted = isTarget(name);
        nn.Module<Tensor, Tensor> layer = !targeted
            ? new TrainableDenseLinear(name, w, b, options.ComputeDType, release)
            : Method switch
            {
                LoqtMethod.Loqt or LoqtMethod.LoqtNoQuantization => new LoqtLinear(name, w, b, options, release),
                LoqtMethod.Lora => new LoraLinear(name, w, b, options, release),
                LoqtMethod.Full => new TrainableDenseLinear(name, w, b, options.ComputeDType, release),
                _ => CreateGaLoreLayer(name, w, b, options),
            };
        ApplySinks(layer);
        layers.Add(new CreatedLinear(name, layer, targeted));
        return layer;
    }

    /// <summary>
    /// Frees the handles of the gradients the layers' last backward returned (kept until the next backward, see
    /// <c>BackwardResultRelease</c>). Call it once a backward pass has completed.
    /// </summary>
    public void ReleaseBackwardResults() => release.ReleasePending();

    /// <summary>Arms every LoQT layer for a re-initialization at the coming optimizer step (see <see cref="LoqtLinear.ArmReinitialization"/>).</summary>
    /// <param name="microBatches">Micro-batches in that step.</param>
    public void ArmReinitialization(int microBatches = 1)
    {
        foreach (var layer in LoqtLayers)
        {
            layer.ArmReinitialization(microBatches);
        }
    }

    private TrainableDenseLinear CreateGaLoreLayer(string name, Tensor weight, Tensor? bias, LoqtOptions options)
    {
        options.ValidateFor(weight.shape[1], weight.shape[0], name);
        return new TrainableDenseLinear(name, weight, bias, options.ComputeDType, release);
    }

    // Gives a layer the factory's current update and timing sinks.
    private void ApplySinks(nn.Module<Tensor, Tensor> layer)
    {
        switch (layer)
        {
            case LoqtLinear l:
                (l.UpdateSink, l.TimingSink) = (updateSink, timingSink);
                break;
            case LoraLinear l:
                (l.UpdateSink, l.TimingSink) = (updateSink, timingSink);
                break;
            case TrainableDenseLinear l:
                l.UpdateSink = updateSink;
                break;
        }
    }
}
