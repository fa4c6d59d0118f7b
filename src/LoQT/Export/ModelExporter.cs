using LoQT.IO;
using LoQT.Native;
using LoQT.Models.Llama;
using LoQT.Quantization;
using LoQT.SafeTensors;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Export;

/// <summary>
/// Exports a LoQT training checkpoint as a Hugging Face model folder: every adapter merged into its weight, the weights
/// as bitsandbytes NF4 that transformers loads as a 4-bit model (or dense bf16/fp16/fp32), config.json, the tokenizer
/// and generation files, and a model card.
/// </summary>
/// <remarks>
/// <para>
/// Streaming: one tensor is read, merged (a layer's W, P and B, nothing more), converted and written to a temporary
/// shard file before the next, so peak memory is about one layer in full precision (twice over while its adapter
/// product is added), never the model.
/// </para>
/// <para>
/// Atomic: everything is written into a temporary folder beside the output and renamed onto it at the end, so a failed
/// or cancelled export leaves no folder that looks complete. A non-empty output is refused unless
/// <see cref="ExportOptions.Force"/>, which replaces it only once the new export is complete.
/// </para>
/// <para>
/// What makes transformers (bitsandbytes 4-bit quantizer) accept the NF4 folder, checked against its sources and
/// bitsandbytes' <c>QuantState.from_dict</c>: per weight the keys <c>X.weight</c>, <c>.absmax</c>, <c>.quant_map</c>,
/// (<c>.nested_absmax</c>, <c>.nested_quant_map</c>) and <c>.quant_state.bitsandbytes__nf4</c>, whose JSON <c>dtype</c>
/// is read with <c>getattr(torch, dtype)</c> and only sets what dequantization returns (here the compute dtype; the
/// codes are quantized from the fp32 merged weight); <c>bnb_4bit_use_double_quant</c> matching the weights (transformers 5
/// looks for the nested keys only when it is set); <c>llm_int8_skip_modules</c> naming <c>lm_head</c> (a given list
/// replaces transformers' default skips, tied or not); a weight's parts in one shard (transformers 4 takes the quant
/// state from the weight's shard); <c>torch_dtype</c> in config.json (without it bitsandbytes loading picks float16);
/// safetensors metadata <c>{"format": "pt"}</c>.
/// </para>
/// <para>
/// Deterministic: the same checkpoint and options give the same bytes in every file (no timestamps, fixed tensor
/// order, bit-exact merges and quantization).
/// </para>
/// </remarks>
public static class ModelExporter
{
    private static readonly Dictionary<string, string> SafeTensorsMetadata = new() { ["format"] = "pt" };

    /// <summary>Resolves what <see cref="ExportOptions.Checkpoint"/> means: a checkpoint folder, or a run's newest checkpoint.</summary>
    /// <param name="path">A training output directory or a checkpoint folder.</param>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">The folder is neither a LoQT checkpoint nor a training output directory.</exception>
    public static string ResolveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!Directory.Exists(path))
        {
            throw new DirectoryNotFoundException($"--checkpoint {path}: no such directory.");
        }

        var checkpoint = CheckpointDirectory.Resolve(path) ?? path;
        if (!LoqtCheckpoint.IsLoqtModel(checkpoint))
        {
            throw new FileNotFoundException(
                $"--checkpoint {path} is neither a LoQT checkpoint ({LoqtCheckpoint.LoqtConfigFileName}) nor a training output directory ({CheckpointDirectory.LatestFileName}); " +
                "to quantize a plain Hugging Face checkpoint use `loqt quantize`.",
                Path.Combine(checkpoint, LoqtCheckpoint.LoqtConfigFileName));
        }

        return Path.GetFullPath(checkpoint);
    }

    /// <summary>
    /// Exports the checkpoint. Options, the checkpoint's files and every tensor's name, dtype and shape are checked
    /// before any work; then the model is written tensor by tensor into a temporary folder that is renamed onto
    /// <see cref="ExportOptions.Output"/> when complete.
    /// </summary>
    /// <param name="options">What to export, where, and how.</param>
    /// <param name="progress">Told about each tensor before it is written (on the exporting thread).</param>
    /// <param name="cancellationToken">Checked between tensors; a cancelled export leaves nothing behind.</param>
    /// <returns>What was written; <see cref="ExportResult.OutputDirectory"/> is the exported folder.</returns>
    /// <exception cref="ArgumentException">An option is invalid, or the output overlaps the checkpoint (named in the message).</exception>
    /// <exception cref="IOException">The output exists and is not empty (without <see cref="ExportOptions.Force"/>), or writing failed.</exception>
    /// <exception cref="InvalidDataException">The checkpoint is malformed: the message names the file and tensor.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; nothing was written.</exception>
    public static Task<ExportResult> ExportAsync(ExportOptions options, IProgress<ExportProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);

        // The work is CPU-bound torch code and synchronous file writes: it runs on the thread pool, off the caller's thread.
        return Task.Run(() => Export(options, progress, cancellationToken), cancellationToken);
    }

    private static ExportResult Export(ExportOptions options, IProgress<ExportProgress>? progress, CancellationToken cancellationToken)
    {
        options.Validate();
        var checkpoint = ResolveCheckpoint(options.Checkpoint);
        var output = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Output));
        CheckNoOverlap(checkpoint, output);
        StagingDirectory.CheckTarget(output, options.Force);

        using var reader = LoqtCheckpointReader.Open(checkpoint);
        var tensorDType = options.Format.DenseDType() ?? options.ComputeDType ?? reader.Metadata.Options.ComputeDType;
        cancellationToken.ThrowIfCancellationRequested();

        using var staging = StagingDirectory.Create(output, options.Force);
        var (merged, quantized, bytes) = WriteTensors(reader, staging.Path, options, tensorDType, progress, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();

        var quantization = options.Format == ExportFormat.Nf4
            ? new QuantizationConfig { UseDoubleQuant = options.DoubleQuant, ComputeDType = BnbQuantState.TorchDTypeName(tensorDType), SkipModules = ExportedConfig.SkipModules }
            : null;
        AtomicFile.WriteAllText(Path.Combine(staging.Path, LlamaConfig.FileName), ExportedConfig.ToText(ExportedConfig.Build(reader.ConfigJson, tensorDType, quantization)));
        LoqtCheckpoint.CopyCompanionFiles(checkpoint, staging.Path);
        var (perplexity, evalStep) = ModelCard.FindEvalPerplexity(checkpoint, reader.TrainerState);
        var card = new ModelCard(
            options.ModelId ?? Path.GetFileName(output), options.Format, tensorDType, options.DoubleQuant, options.BlockSize, reader.Metadata,
            reader.TrainerState, BaseModelReference.Resolve(reader.TrainerState?.BaseModel), perplexity, evalStep);
        AtomicFile.WriteAllText(Path.Combine(staging.Path, ModelCard.FileName), card.ToMarkdown());

        cancellationToken.ThrowIfCancellationRequested();
        var files = Directory.EnumerateFiles(staging.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        staging.Commit();
        return new ExportResult(output, checkpoint, options.Format, files!, merged, quantized, bytes, ProcessMemory.PeakBytes);
    }

    private static (int Merged, int Quantized, long Bytes) WriteTensors(
        LoqtCheckpointReader reader, string folder, ExportOptions options, ScalarType tensorDType, IProgress<ExportProgress>? progress, CancellationToken cancellationToken)
    {
        var tensors = reader.Tensors.ToArray();
        int merged = 0, quantized = 0;
        using var writer = new ShardedSafeTensorsWriter(folder, options.MaxShardBytes, metadata: SafeTensorsMetadata);
        for (var i = 0; i < tensors.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var spec = tensors[i];
            var step = WriteTensor(reader, writer, spec, options, tensorDType, report: s => progress?.Report(new ExportProgress(i, tensors.Length, spec.Name, s)));
            merged += spec.Role == LlamaTensorRole.LinearWeight && CheckpointMerger.HasAdapters(reader, LayerOf(spec)) ? 1 : 0;
            quantized += step is ExportStep.MergeAndQuantize ? 1 : 0;

            // The tensor's memory is freed; without this the C heap would keep several layers' worth of it resident.
            NativeHeap.Trim();
        }

        cancellationToken.ThrowIfCancellationRequested();
        var bytes = writer.TotalSize;
        writer.Complete();
        return (merged, quantized, bytes);
    }

    /// <summary>Reads, merges, converts or quantizes one tensor and adds it to the shards; returns what was done.</summary>
    private static ExportStep WriteTensor(
        LoqtCheckpointReader reader, ShardedSafeTensorsWriter writer, LlamaTensorSpec spec, ExportOptions options, ScalarType tensorDType, Action<ExportStep> report)
    {
        using var scope = NewDisposeScope();
        if (spec.Role != LlamaTensorRole.LinearWeight)
        {
            report(ExportStep.Convert);
            var tensor = reader.ReadModelTensor(spec.Name);
            writer.Add(spec.Name, tensor.dtype == tensorDType ? tensor : tensor.to(tensorDType));
            return ExportStep.Convert;
        }

        var layer = LayerOf(spec);
        var step = options.Format == ExportFormat.Nf4 && IsDecoderProjection(layer) ? ExportStep.MergeAndQuantize
            : CheckpointMerger.HasAdapters(reader, layer) ? ExportStep.Merge
            : ExportStep.Convert;
        report(step);
        var weight = CheckpointMerger.MergedWeight(reader, layer, spec.Shape[1], spec.Shape[0]);
        if (step == ExportStep.MergeAndQuantize)
        {
            // Quantized from the fp32 sum, as a LoQT merge stores it; the quant state's dtype only says what dequantization returns.
            using var nf4 = Nf4Tensor.Quantize(weight, options.BlockSize, options.DoubleQuant);
            using var labelled = Nf4Tensor.FromParts(
                nf4.Packed, nf4.Absmax, nf4.Shape, nf4.BlockSize, tensorDType, nf4.NestedAbsmax, nf4.NestedOffset, nf4.NestedBlockSize, nf4.NestedQuantMap);
            BnbNf4Format.Write(writer, spec.Name, labelled);
        }
        else
        {
            writer.Add(spec.Name, weight.to(tensorDType));
        }

        return step;
    }

    private static string LayerOf(LlamaTensorSpec spec) => spec.Name[..^".weight".Length];

    /// <summary>The linear layers an NF4 export quantizes: every projection of the decoder layers (not <c>lm_head</c>), as bitsandbytes loading does.</summary>
    private static bool IsDecoderProjection(string layer) => layer.StartsWith("model.layers.", StringComparison.Ordinal);

    private static void CheckNoOverlap(string checkpoint, string output)
    {
        static bool Inside(string path, string folder) =>
            path.Equals(folder, StringComparison.Ordinal) || path.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);

        // Output inside the checkpoint would be exported into itself; the checkpoint inside the output (e.g. the run folder)
        // would be deleted by --force.
        if (Inside(output, checkpoint) || Inside(checkpoint, output))
        {
            throw new ArgumentException($"--output {output} overlaps the checkpoint {checkpoint}; choose a folder outside it.", "output");
        }
    }
}
