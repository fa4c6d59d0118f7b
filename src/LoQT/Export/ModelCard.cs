using System.Globalization;
using System.Text;
using LoQT.Loqt;
using LoQT.Quantization;
using LoQT.Training;
using static TorchSharp.torch;

namespace LoQT.Export;

/// <summary>What the README.md of an export says.</summary>
/// <param name="ModelId">How the examples refer to the model: a Hub id, or the folder's name.</param>
/// <param name="Format">The format written.</param>
/// <param name="TensorDType">The dtype of the dense tensors (and the NF4 compute dtype).</param>
/// <param name="DoubleQuant">NF4: whether the absmax values are double-quantized.</param>
/// <param name="BlockSize">NF4: elements per absmax block.</param>
/// <param name="Metadata">The checkpoint's loqt.json.</param>
/// <param name="TrainerState">The checkpoint's trainer_state.json, if any.</param>
/// <param name="BaseModel">What the base model was.</param>
/// <param name="EvalPerplexity">The last validation perplexity, if the run evaluated.</param>
/// <param name="EvalStep">The step of that evaluation.</param>
internal sealed record ModelCard(
    string ModelId,
    ExportFormat Format,
    ScalarType TensorDType,
    bool DoubleQuant,
    int BlockSize,
    LoqtCheckpointMetadata Metadata,
    TrainerState? TrainerState,
    BaseModelReference BaseModel,
    double? EvalPerplexity,
    long? EvalStep)
{
    /// <summary>The README.md file name.</summary>
    public const string FileName = "README.md";

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>
    /// The last validation perplexity of the run that wrote a checkpoint: trainer_state.json's last eval loss, else the
    /// last <c>eval_perplexity</c> at or before the checkpoint's step in the run's metrics.jsonl (beside the checkpoint).
    /// </summary>
    /// <param name="checkpoint">The checkpoint folder.</param>
    /// <param name="state">Its trainer state, if any.</param>
    public static (double? Perplexity, long? Step) FindEvalPerplexity(string checkpoint, TrainerState? state)
    {
        if (state?.LastEvalLoss is { } loss)
        {
            return (Math.Exp(loss), state.Step);
        }

        var metrics = Path.Combine(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(checkpoint)) ?? checkpoint, MetricsLog.FileName);
        if (state is null || !File.Exists(metrics))
        {
            return (null, null);
        }

        var last = MetricsLog.Read(metrics)
            .Where(r => r.TryGetProperty("eval_perplexity", out _) && r.GetProperty("step").GetInt64() <= state.Step)
            .Select(r => ((double?)r.GetProperty("eval_perplexity").GetDouble(), (long?)r.GetProperty("step").GetInt64()))
            .LastOrDefault();
        return last;
    }

    /// <summary>The card: YAML front matter (base_model, library_name, tags, license), then what the model is, how it was trained, and how to load it.</summary>
    public string ToMarkdown()
    {
        var text = new StringBuilder();
        WriteFrontMatter(text);
        var title = ModelId.Contains('/', StringComparison.Ordinal) ? ModelId[(ModelId.LastIndexOf('/') + 1)..] : ModelId;
        text.Append("# ").Append(title).Append("\n\n");
        text.Append(Summary()).Append("\n\n");
        WriteRecipe(text);
        WriteEvaluation(text);
        WriteExport(text);
        WriteTransformersUsage(text);
        WriteLoqtUsage(text);
        return text.ToString();
    }

    private void WriteFrontMatter(StringBuilder text)
    {
        text.Append("---\n");
        if (BaseModel.HubId is { } hubId)
        {
            text.Append("base_model: ").Append(hubId).Append('\n');
        }

        text.Append("library_name: transformers\n");
        if (BaseModel.License is { } license)
        {
            text.Append("license: ").Append(license).Append('\n');
        }

        text.Append("pipeline_tag: text-generation\n");
        text.Append("tags:\n");
        string[] tags = Format == ExportFormat.Nf4
            ? ["loqt", "nf4", "4-bit", "bitsandbytes", "llama"]
            : ["loqt", Format.ToName(), "llama"];
        foreach (var tag in tags)
        {
            text.Append("- ").Append(tag).Append('\n');
        }

        text.Append("---\n\n");
    }

    private string Summary()
    {
        var method = Metadata.Method switch
        {
            LoqtMethod.Loqt => "LoQT (Loeschcke et al., NeurIPS 2024): NF4 weights, an NF4 projection P from the SVD of each layer's gradient and a trainable factor B, merged into the weights on an exponentially growing schedule",
            LoqtMethod.LoqtNoQuantization => "LoQT without quantization (loqt-nq): gradient-initialized low-rank adapters merged into full-precision weights on a schedule",
            LoqtMethod.Full => "full-rank AdamW training (the full baseline of LoQT)",
            LoqtMethod.Lora => "LoRA adapters (the lora baseline of LoQT), merged into the weights at export",
            _ => "GaLore (projected-gradient AdamW, the galore baseline of LoQT)",
        };
        var from = BaseModel.DisplayName is { } name ? $"`{name}`" : TrainerState is null ? "a Llama model" : "a random initialization";
        var storage = Format == ExportFormat.Nf4
            ? $"Its decoder projections are stored as bitsandbytes NF4 (4-bit) weights that transformers loads as a 4-bit model; embeddings, norms and `lm_head` are {DTypeName(TensorDType)}."
            : $"Every tensor is stored in {DTypeName(TensorDType)}; any Llama loader reads it.";
        return $"A Llama model trained from {from} with {method}, using LoQT.NET (`dotnet loqt`). {storage}";
    }

    private void WriteRecipe(StringBuilder text)
    {
        var o = TrainerState?.Options;
        var layers = Metadata.Options;
        text.Append("## Training recipe\n\n| | |\n|---|---|\n");
        Row(text, "Method", Metadata.Method.ToName());
        if (Metadata.Method != LoqtMethod.Full)
        {
            Row(text, "Rank r", layers.Rank.ToString(C));
            Row(text, "α (scale of the low-rank path)", layers.Alpha.ToString("R", C));
        }

        if (Metadata.Method is LoqtMethod.Loqt or LoqtMethod.LoqtNoQuantization or LoqtMethod.Lora)
        {
            Row(text, "W during training", layers.QuantizeWeight ? $"NF4, blocksize {layers.BlockSize}{(layers.DoubleQuantization ? ", double quantization" : "")}" : "full precision");
        }

        if (Metadata.Method is LoqtMethod.Loqt or LoqtMethod.LoqtNoQuantization)
        {
            Row(text, "P", layers.QuantizeProjection ? "NF4" : "full precision");
            Row(text, "Error compensation", string.Create(C, $"{layers.ErrorCompensationIterations} iterations"));
            Row(text, "Projection from the gradient", layers.Svd.Kind == SvdKind.Full ? "full SVD" : string.Create(C, $"randomized SVD (oversampling {layers.Svd.Oversampling}, {layers.Svd.PowerIterations} power iterations)"));
        }

        if (o is not null)
        {
            if (o.UsesReinitialization || Metadata.Method == LoqtMethod.GaLore)
            {
                var s = o.Schedule;
                var growth = s.Kind == MergeScheduleKind.Static ? "" : string.Create(C, $", {(s.Kind == MergeScheduleKind.Exponential ? "ψ" : "increment")} {s.Increment:R}");
                Row(text, "Merge schedule", string.Create(C, $"{s.Kind.ToString().ToLowerInvariant()}, first gap T = {s.Interval}{growth}{(s.MaxGap is { } gap ? $", max gap {gap}" : "")}"));
            }

            Row(text, "Optimizer", string.Create(C,
                $"{(o.Optimizer == OptimizerKind.AdamW8bit ? "AdamW 8-bit" : "AdamW")}{(o.PerLayerUpdates ? ", per-layer updates" : "")}, lr {o.LearningRate:R} ({o.LearningRateSchedule.ToString().ToLowerInvariant()}, {o.WarmupSteps} warmup steps), weight decay {o.WeightDecay:R}, gradient clipping {o.MaxGradNorm:R}"));
            Row(text, "Batch", string.Create(C, $"{o.BatchSize} sequences × {o.GradientAccumulation} accumulation steps × {o.SequenceLength} tokens{(o.NoPacking ? " (unpacked)" : "")}"));
            Row(text, "Task", o.Task == TrainingTask.Completion ? "prompt/completion fine-tuning (loss on completions)" : "causal language modelling");
            Row(text, "Steps", string.Create(C, $"{TrainerState!.Step} optimizer steps, {TrainerState.TokensSeen:N0} training tokens"));
            Row(text, "Training data", FileNameOf(TrainerState.Dataset));
            Row(text, "Seed", o.Seed.ToString(C));
        }

        Row(text, "Compute dtype", DTypeName(layers.ComputeDType));
        if (Metadata.Method != LoqtMethod.Full)
        {
            Row(text, "Adapted layers", string.Join(", ", Metadata.TargetModules));
        }

        text.Append('\n');
    }

    private void WriteEvaluation(StringBuilder text)
    {
        text.Append("## Evaluation\n\n");
        if (EvalPerplexity is { } perplexity)
        {
            var data = TrainerState?.EvalDataset is { } eval ? $" on `{FileNameOf(eval)}`" : "";
            text.Append(string.Create(C, $"Validation perplexity {perplexity:0.###}{data} at step {EvalStep}, measured by the training run before export"));
            text.Append(Format == ExportFormat.Nf4 ? " (the export re-quantizes the merged weights to NF4, which moves it by about the NF4 rounding).\n\n" : ".\n\n");
        }
        else
        {
            text.Append("The training run did not evaluate (no `--eval-dataset`); measure with `dotnet loqt eval` below.\n\n");
        }
    }

    private void WriteExport(StringBuilder text)
    {
        text.Append("## Export\n\n");
        var merge = Metadata.Method switch
        {
            LoqtMethod.Loqt or LoqtMethod.LoqtNoQuantization => "Each adapted layer's B was merged into its weight in fp32 (W = deq(W_q) + α·B·P, or α·P·B when P is the right factor).",
            LoqtMethod.Lora => "Each adapted layer's LoRA factors were merged into its weight in fp32 (W = deq(W_q) + α·B·A).",
            _ => "The trained weights are written as they are.",
        };
        text.Append(merge).Append(' ');
        text.Append(Format == ExportFormat.Nf4
            ? string.Create(C, $"Every decoder projection was then quantized to NF4 (blocksize {BlockSize}, double quantization {(DoubleQuant ? "on" : "off")}), bit-exact with bitsandbytes, and stored in its serialization format; config.json carries the matching `quantization_config` (`llm_int8_skip_modules`: {string.Join(", ", ExportedConfig.SkipModules)}).\n\n")
            : $"Every tensor is {DTypeName(TensorDType)}; config.json has no `quantization_config`.\n\n");
    }

    private void WriteTransformersUsage(StringBuilder text)
    {
        var torchDType = "torch." + BnbQuantState.TorchDTypeName(TensorDType);
        text.Append("## Use with transformers\n\n```python\nimport torch\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n");
        text.Append("model_id = \"").Append(ModelId).Append("\"\ntokenizer = AutoTokenizer.from_pretrained(model_id)\n");
        if (Format == ExportFormat.Nf4)
        {
            text.Append("# config.json carries the bitsandbytes 4-bit settings, the same as\n");
            text.Append(string.Create(C, $"# BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=\"nf4\", bnb_4bit_use_double_quant={(DoubleQuant ? "True" : "False")}, bnb_4bit_compute_dtype={torchDType}),\n"));
            text.Append("# so the weights load as 4-bit Linear4bit layers (needs bitsandbytes and a device it supports).\n");
            text.Append("model = AutoModelForCausalLM.from_pretrained(model_id, device_map=\"auto\", torch_dtype=").Append(torchDType).Append(")\n");
        }
        else
        {
            text.Append("model = AutoModelForCausalLM.from_pretrained(model_id, torch_dtype=").Append(torchDType).Append(")\n\n");
            text.Append("# or quantized to 4 bits while loading, with bitsandbytes:\nfrom transformers import BitsAndBytesConfig\n\n");
            text.Append("model = AutoModelForCausalLM.from_pretrained(\n    model_id,\n    device_map=\"auto\",\n");
            text.Append("    quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=\"nf4\", bnb_4bit_compute_dtype=torch.bfloat16),\n)\n");
        }

        text.Append("inputs = tokenizer(\"The capital of France is\", return_tensors=\"pt\").to(model.device)\n");
        text.Append("print(tokenizer.decode(model.generate(**inputs, max_new_tokens=32)[0]))\n```\n\n");
    }

    private void WriteLoqtUsage(StringBuilder text)
    {
        text.Append("## Use with `dotnet loqt`\n\n```bash\n");
        text.Append("dotnet loqt generate --model ").Append(ModelId).Append(" --prompt \"The capital of France is\" --max-new-tokens 32\n");
        text.Append("dotnet loqt eval --model ").Append(ModelId).Append(" --dataset valid.jsonl --json\n");
        text.Append("dotnet loqt adapt --model ").Append(ModelId).Append(" --dataset train.jsonl --output runs/next   # continue training with LoQT\n");
        text.Append("```\n");
    }

    private static void Row(StringBuilder text, string name, string value) =>
        text.Append("| ").Append(name).Append(" | ").Append(value.Replace("|", "\\|", StringComparison.Ordinal)).Append(" |\n");

    /// <summary>Only the file name of a local path: a card published to the Hub should not show the trainer's folders.</summary>
    private static string FileNameOf(string path) => Path.GetFileName(Path.TrimEndingDirectorySeparator(path));

    private static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => "float32",
    };
}
