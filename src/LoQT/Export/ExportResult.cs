namespace LoQT.Export;

/// <summary>What <see cref="ModelExporter.ExportAsync"/> wrote.</summary>
/// <param name="OutputDirectory">The exported model folder (full path).</param>
/// <param name="Checkpoint">The checkpoint folder that was exported.</param>
/// <param name="Format">The format written.</param>
/// <param name="Files">The files of the export, relative to <paramref name="OutputDirectory"/>, sorted.</param>
/// <param name="MergedLayers">Linear layers whose adapters were merged into the weight.</param>
/// <param name="QuantizedWeights">Weights stored as NF4.</param>
/// <param name="TensorBytes">Bytes of tensor data written (over all shards).</param>
/// <param name="PeakResidentBytes">Peak resident memory of the process when the export finished.</param>
public sealed record ExportResult(
    string OutputDirectory,
    string Checkpoint,
    ExportFormat Format,
    IReadOnlyList<string> Files,
    int MergedLayers,
    int QuantizedWeights,
    long TensorBytes,
    long PeakResidentBytes);
