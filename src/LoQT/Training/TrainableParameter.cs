using LoQT.Loqt;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LoQT.Training;

/// <summary>GaLore's projected-gradient update for one 2-D weight.</summary>
/// <param name="Rank">r of the projection.</param>
/// <param name="Schedule">The optimizer updates at which the projection is recomputed from the current gradient (update 0 is always one).</param>
/// <param name="Scale">GaLore's scale of the projected-back update.</param>
/// <param name="Svd">The SVD used for the projection (full by default).</param>
public sealed record GaLoreSettings(int Rank, MergeSchedule Schedule, double Scale = 1.0, SvdOptions? Svd = null);

/// <summary>A parameter an optimizer steps, with its name (for state) and how.</summary>
/// <param name="Name">Unique name, e.g. <c>model.layers.0.mlp.up_proj.adapter</c>; names the optimizer state.</param>
/// <param name="Parameter">The parameter.</param>
/// <param name="ApplyWeightDecay">Whether decoupled weight decay applies (usually not for norms and biases).</param>
/// <param name="GaLore">When set, the parameter (2-D) is updated by GaLore: Adam in the projected space, projected back.</param>
public sealed record TrainableParameter(string Name, Parameter Parameter, bool ApplyWeightDecay = true, GaLoreSettings? GaLore = null);
