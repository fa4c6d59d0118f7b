using System.CommandLine;
using LoQT.Models.Llama;
using LoQT.Training;

namespace LoQT.Tool.Commands;

/// <summary>
/// The options that describe a training run's shape, shared by <c>loqt memory</c> (which plans it) and
/// <c>loqt bench memory</c> (which runs it and measures it against the plan): model, rank, tokens, method, optimizer,
/// per-layer updates, dtype and SVD.
/// </summary>
internal sealed class RunShapeOptions
{
    public static readonly string[] Optimizers = ["adamw", "adamw8bit"];
    public static readonly string[] Dtypes = ["bf16", "fp32"];
    public static readonly string[] SvdKinds = ["full", "randomized"];

    public Option<string> Config { get; } = new("--config")
    {
        Description = $"Model: a preset ({string.Join(", ", LlamaPresets.Names)}), a config.json file, or a model folder holding one.",
        HelpName = "PRESET_OR_FILE",
        Required = true,
    };

    public Option<int?> Rank { get; } = new("--rank") { Description = "Rank of P/B (LoQT), A/B (LoRA) and GaLore's projection [default: 128, or hidden_size/4 when smaller].", HelpName = "R" };

    public Option<int> SeqLen { get; } = new("--seq-len") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 256, HelpName = "N" };

    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Sequences per forward/backward pass.", DefaultValueFactory = _ => 1, HelpName = "N" };

    public Option<string> Method { get; } = new("--method") { Description = $"Training method: {string.Join(", ", TrainingMethodNames.All)}.", DefaultValueFactory = _ => "loqt", HelpName = "METHOD" };

    public Option<string> Optimizer { get; } = new("--optimizer") { Description = "Optimizer: adamw (fp32 moments) or adamw8bit (blockwise 8-bit moments).", DefaultValueFactory = _ => "adamw", HelpName = "adamw|adamw8bit" };

    public Option<bool> PerLayer { get; } = new("--per-layer") { Description = "Per-layer updates: step each parameter inside backward and free its gradient." };

    public Option<string> Dtype { get; } = new("--dtype") { Description = "Compute dtype of activations, B and the unquantized tensors.", DefaultValueFactory = _ => "bf16", HelpName = "bf16|fp32" };

    public Option<string> Svd { get; } = new("--svd")
    {
        Description = "How P is taken from the gradient at re-initializations: full SVD (the reference) or randomized (range finder, 8 oversamples, 2 power iterations).",
        DefaultValueFactory = _ => "full",
        HelpName = "full|randomized",
    };

    /// <summary>The options, in help order.</summary>
    public IEnumerable<Option> All => [Config, Rank, SeqLen, BatchSize, Method, Optimizer, PerLayer, Dtype, Svd];

    /// <summary>The value of a choice option in its canonical spelling.</summary>
    /// <exception cref="ArgumentException">Not one of <paramref name="choices"/> (names the option).</exception>
    public static string Choice(string value, string option, string[] choices) =>
        choices.FirstOrDefault(c => string.Equals(c, value.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"{option} must be one of {string.Join(", ", choices)} (got '{value}').");

    /// <summary>An exception's message without the " (Parameter 'x')" that names a C# parameter the user never saw.</summary>
    public static string MessageOf(Exception e) =>
        e is ArgumentException { ParamName: { } name } ? e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : e.Message;
}
