namespace LoQT.Models.Llama;

/// <summary>Progress of an evaluation, reported after each batch.</summary>
/// <param name="Batches">Batches done.</param>
/// <param name="TotalBatches">Batches in all.</param>
/// <param name="Tokens">Tokens scored so far.</param>
/// <param name="Loss">Mean loss so far.</param>
public readonly record struct EvaluationProgress(int Batches, int TotalBatches, long Tokens, double Loss);
