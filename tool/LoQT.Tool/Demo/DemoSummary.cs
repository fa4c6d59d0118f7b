using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoQT.Models.Llama;
using LoQT.Training;

namespace LoQT.Tool.Demo;

/// <summary>How one method's model scores on the held-out split.</summary>
/// <param name="HeldOutLoss">Mean cross-entropy (nats) of the held-out answers (and their EOS).</param>
/// <param name="Accuracy">Greedy answers to held-out problems.</param>
internal sealed record DemoScores(double HeldOutLoss, ExactMatchResult Accuracy)
{
    /// <summary><c>exp(HeldOutLoss)</c>: 1 means the answers are predicted with certainty.</summary>
    public double HeldOutPerplexity => Math.Exp(HeldOutLoss);
}

/// <summary>One method's run: how it trained and how its model scores.</summary>
/// <param name="Method">The method's command-line name (<c>full</c>, <c>loqt</c>).</param>
/// <param name="Training">What the trainer reported.</param>
/// <param name="Checkpoint">The checkpoint the run wrote last.</param>
/// <param name="TrainSeconds">Wall time of the training run (load, steps, periodic evaluation, checkpoint).</param>
/// <param name="TrainableParameters">Parameters with gradients and optimizer state during training.</param>
/// <param name="WeightBytesOnDisk">The checkpoint's model and adapter files (optimizer state not included).</param>
/// <param name="Scores">Held-out scores of the trained model, reloaded from its checkpoint.</param>
internal sealed record DemoMethodResult(
    string Method, TrainingResult Training, string Checkpoint, double TrainSeconds, long TrainableParameters, long WeightBytesOnDisk, DemoScores Scores);

/// <summary>The exported LoQT model, reloaded from disk.</summary>
/// <param name="Directory">The model folder that was reloaded.</param>
/// <param name="Format">What that folder holds.</param>
/// <param name="Scores">Its held-out scores.</param>
/// <param name="Samples">A few of its answers.</param>
internal sealed record DemoExportResult(string Directory, string Format, DemoScores Scores, IReadOnlyList<ExactMatchOutcome> Samples);

/// <summary>The outcome of a demo run, as <c>summary.json</c> and as the markdown table of <c>summary.md</c> and stdout.</summary>
internal sealed record DemoSummary(
    DemoSettings Settings,
    int TrainProblems,
    int HeldOutProblems,
    long ModelParameters,
    IReadOnlyList<DemoMethodResult> Methods,
    DemoExportResult Export,
    string Chart,
    double WallSeconds)
{
    /// <summary>The summary as JSON (snake_case keys, invariant numbers).</summary>
    public string ToJson(bool indented)
    {
        var model = Settings.Model;
        var root = new JsonObject
        {
            ["corpus"] = new JsonObject
            {
                ["task"] = "two-operand addition and subtraction",
                ["operand_bound"] = Settings.OperandBound,
                ["train_problems"] = TrainProblems,
                ["held_out_problems"] = HeldOutProblems,
            },
            ["model"] = new JsonObject
            {
                ["hidden_size"] = model.HiddenSize,
                ["intermediate_size"] = model.IntermediateSize,
                ["num_hidden_layers"] = model.NumHiddenLayers,
                ["num_attention_heads"] = model.NumAttentionHeads,
                ["vocab_size"] = model.VocabSize,
                ["parameters"] = ModelParameters,
            },
            ["training"] = new JsonObject
            {
                ["steps"] = Settings.Steps,
                ["batch_size"] = Settings.BatchSize,
                ["lr"] = Settings.LearningRate,
                ["warmup"] = Settings.WarmupSteps,
                ["rank"] = Settings.Rank,
                ["update_interval"] = Settings.UpdateInterval,
                ["interval_growth"] = Settings.IntervalGrowth,
                ["seed"] = Settings.Seed,
            },
            ["methods"] = new JsonArray(Methods.Select(m => (JsonNode)MethodJson(m)).ToArray()),
            ["export"] = ExportJson(Export),
            ["chart"] = Chart,
            ["wall_seconds"] = Math.Round(WallSeconds, 1),
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = indented });
    }

    /// <summary>The summary as markdown: a heading, the comparison table, the reloaded model's answers.</summary>
    public string ToMarkdown()
    {
        var model = Settings.Model;
        var text = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        text.AppendLine(c, $"## LoQT vs full-rank: a {model.NumHiddenLayers}-layer Llama (hidden {model.HiddenSize}, {ModelParameters:N0} parameters) pretrained on arithmetic");
        text.AppendLine();
        text.AppendLine(c, $"{TrainProblems:N0} training problems (operands below {Settings.OperandBound}), {HeldOutProblems:N0} held out; " +
            $"{Settings.Steps} steps of {Settings.BatchSize} problems, lr {Settings.LearningRate:0.####}, seed {Settings.Seed}; " +
            $"LoQT rank {Settings.Rank}, first merge gap {Settings.UpdateInterval} (growth {Settings.IntervalGrowth}). Whole demo: {WallSeconds:0} s.");
        text.AppendLine();
        text.AppendLine("| model | held-out perplexity | exact-match accuracy | final train loss | trainable parameters | weights on disk | train time |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var m in Methods)
        {
            text.AppendLine(c, $"| {m.Method} | {m.Scores.HeldOutPerplexity:0.000} | {Accuracy(m.Scores)} | {m.Training.TrainLoss:0.0000} | " +
                $"{m.TrainableParameters:N0} | {ProcessMemory.Format(m.WeightBytesOnDisk)} | {m.TrainSeconds:0} s |");
        }

        text.AppendLine(c, $"| loqt, reloaded from disk ({Export.Format}) | {Export.Scores.HeldOutPerplexity:0.000} | {Accuracy(Export.Scores)} | | | | |");
        text.AppendLine();
        text.AppendLine("Held-out problems answered by the reloaded LoQT model (greedy):");
        text.AppendLine();
        foreach (var s in Export.Samples)
        {
            text.AppendLine(c, $"    {s.Item.Prompt + s.Generated,-14} {(s.IsCorrect ? "right" : $"wrong (expected {s.Item.Answer})")}");
        }

        text.AppendLine();
        text.AppendLine(c, $"Loss curves: {Chart}. Reloaded model: {Export.Directory}.");
        return text.ToString();
    }

    private static string Accuracy(DemoScores scores) => string.Create(CultureInfo.InvariantCulture,
        $"{scores.Accuracy.Accuracy * 100:0.0}% ({scores.Accuracy.Correct}/{scores.Accuracy.Total})");

    private static JsonObject ScoresJson(DemoScores scores) => new()
    {
        ["held_out_loss"] = scores.HeldOutLoss,
        ["held_out_perplexity"] = scores.HeldOutPerplexity,
        ["accuracy"] = scores.Accuracy.Accuracy,
        ["correct"] = scores.Accuracy.Correct,
        ["scored"] = scores.Accuracy.Total,
    };

    private static JsonObject ExportJson(DemoExportResult export)
    {
        var json = ScoresJson(export.Scores);
        json.Insert(0, "directory", export.Directory);
        json.Insert(1, "format", export.Format);
        json["samples"] = new JsonArray(export.Samples.Select(s => (JsonNode)new JsonObject
        {
            ["prompt"] = s.Item.Prompt, ["expected"] = s.Item.Answer, ["generated"] = s.Generated, ["correct"] = s.IsCorrect,
        }).ToArray());
        return json;
    }

    private static JsonObject MethodJson(DemoMethodResult m)
    {
        var json = ScoresJson(m.Scores);
        json.Insert(0, "method", m.Method);
        json["final_train_loss"] = m.Training.TrainLoss;
        json["trainable_parameters"] = m.TrainableParameters;
        json["weight_bytes_on_disk"] = m.WeightBytesOnDisk;
        json["train_seconds"] = Math.Round(m.TrainSeconds, 1);
        json["tokens_per_second"] = Math.Round(m.Training.TokensPerSecond, 1);
        json["checkpoint"] = m.Checkpoint;
        return json;
    }
}
