using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using LoQT.Models.Llama;
using LoQT.Training;
using Spectre.Console;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt memory</c>: the planner's peak-memory breakdown for a run, next to full-rank and GaLore training.</summary>
internal static class MemoryCommand
{
    private static readonly string[] Devices = ["cpu", "cuda"];

    private static readonly (string Key, string Label)[] RowLabels =
    [
        ("weights", "Weights W"),
        ("projections", "Projections P"),
        ("adapters", "Adapters (B; LoRA A+B)"),
        ("non_quantized", "Embeddings, norms, lm_head"),
        ("gradients", "Gradients"),
        ("optimizer_state", "Optimizer state"),
        ("activations", "Activations"),
        ("workspace", "Workspace"),
        ("update_transient", "Update-step transient"),
        ("overhead", "Framework overhead"),
    ];

    public static Command Create()
    {
        var shape = new RunShapeOptions();
        var noQuantizeW = new Option<bool>("--no-quantize-w") { Description = "Keep W in the compute dtype (loqt, lora) instead of NF4." };
        var noQuantizeP = new Option<bool>("--no-quantize-p") { Description = "Keep P in the compute dtype (loqt) instead of NF4." };
        var doubleQuant = new Option<bool>("--double-quant") { Description = "Quantize the NF4 absmax values too (8-bit, nested blocks of 256)." };
        var device = new Option<string>("--device") { Description = "Where training runs: cpu (budget = peak RSS) or cuda (budget = GPU memory).", DefaultValueFactory = _ => "cpu", HelpName = "cpu|cuda" };
        var budget = new Option<string?>("--budget") { Description = "Memory available, e.g. 24GiB, 16GB, 512MiB [default on cpu: this machine's memory].", HelpName = "SIZE" };
        var json = new Option<bool>("--json") { Description = "Write the plans as JSON instead of a table." };

        var command = new Command("memory", "Predict the peak memory of training a Llama model (weights, P, B, gradients, optimizer state, activations, update-step transient, overhead) for a method, next to full-rank and GaLore, and whether it fits a budget.")
        {
            noQuantizeW, noQuantizeP, doubleQuant, device, budget, json,
        };
        foreach (var option in shape.All.Reverse())
        {
            command.Options.Insert(0, option);
        }

        command.SetAction(parseResult =>
        {
            var request = new MemoryRequest(
                parseResult.GetValue(shape.Config)!,
                parseResult.GetValue(shape.Rank),
                parseResult.GetValue(shape.SeqLen),
                parseResult.GetValue(shape.BatchSize),
                parseResult.GetValue(shape.Method)!,
                parseResult.GetValue(shape.Optimizer)!,
                parseResult.GetValue(shape.PerLayer),
                parseResult.GetValue(shape.Dtype)!,
                !parseResult.GetValue(noQuantizeW),
                !parseResult.GetValue(noQuantizeP),
                parseResult.GetValue(doubleQuant),
                parseResult.GetValue(device)!,
                parseResult.GetValue(shape.Svd)!,
                parseResult.GetValue(budget),
                parseResult.GetValue(json));
            var output = parseResult.InvocationConfiguration.Output;
            var interactive = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
            return Run(request, output, parseResult.InvocationConfiguration.Error, interactive);
        });
        return command;
    }

    /// <summary>Plans and prints. Exit codes: 0 done, 1 the config could not be read, 2 a bad option value.</summary>
    internal static int Run(MemoryRequest request, TextWriter output, TextWriter error, bool interactive)
    {
        MemoryPlanOptions options;
        long? budgetBytes;
        try
        {
            options = new MemoryPlanOptions
            {
                Method = TrainingMethodNames.Parse(request.Method),
                Rank = request.Rank,
                SequenceLength = request.SequenceLength,
                BatchSize = request.BatchSize,
                Optimizer = ParseChoice(request.Optimizer, "--optimizer", RunShapeOptions.Optimizers) == "adamw8bit" ? OptimizerKind.AdamW8bit : OptimizerKind.AdamW,
                PerLayerUpdates = request.PerLayer,
                Dtype = ParseChoice(request.Dtype, "--dtype", RunShapeOptions.Dtypes) == "fp32" ? ComputeDtype.Float32 : ComputeDtype.BFloat16,
                QuantizeWeights = request.QuantizeWeights,
                QuantizeProjection = request.QuantizeProjection,
                DoubleQuant = request.DoubleQuant,
                Svd = ParseChoice(request.Svd, "--svd", RunShapeOptions.SvdKinds) == "randomized" ? LoQT.Loqt.SvdOptions.Randomized() : LoQT.Loqt.SvdOptions.Full,
                Device = ParseChoice(request.Device, "--device", Devices) == "cuda" ? DeviceKind.Cuda : DeviceKind.Cpu,
            };
            budgetBytes = request.Budget is null
                ? options.Device == DeviceKind.Cpu ? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes : null
                : ParseBudget(request.Budget);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            return Fail(error, MessageOf(e), LoqtCli.UsageError);
        }

        IReadOnlyList<MemoryPlan> plans;
        try
        {
            var configJson = LlamaPresets.ResolveConfigJson(request.Config);
            var planner = new MemoryPlanner();
            plans = ComparedMethods(options.Method)
                .Select(m => planner.Plan(configJson, options with { Method = m }, request.Config))
                .ToList();
        }
        catch (ArgumentException e)
        {
            return Fail(error, MessageOf(e), LoqtCli.UsageError);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return Fail(error, e.Message, 1);
        }

        var budgetNote = request.Budget is null && budgetBytes is not null ? " (this machine's memory)" : "";
        if (request.Json)
        {
            WriteJson(output, request.Config, plans, budgetBytes);
        }
        else if (interactive)
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
            WriteTable(console, request.Config, plans, budgetBytes, budgetNote);
        }
        else
        {
            WritePlain(output, request.Config, plans, budgetBytes, budgetNote);
        }

        return 0;
    }

    /// <summary>The chosen method first, then full and GaLore (each once).</summary>
    internal static IReadOnlyList<TrainingMethod> ComparedMethods(TrainingMethod chosen) =>
        new[] { chosen, TrainingMethod.Full, TrainingMethod.Galore }.Distinct().ToList();

    internal static void WritePlain(TextWriter output, string config, IReadOnlyList<MemoryPlan> plans, long? budgetBytes, string budgetNote)
    {
        output.WriteLine(Heading(config, plans[0]));
        if (budgetBytes is not null)
        {
            output.WriteLine($"budget: {ProcessMemory.Format(budgetBytes.Value)}{budgetNote}");
        }

        output.WriteLine();
        var rows = Rows(plans, budgetBytes);
        var header = new[] { "" }.Concat(plans.Select(p => TrainingMethodNames.Format(p.Options.Method))).ToArray();
        var widths = Enumerable.Range(0, header.Length)
            .Select(i => Math.Max(header[i].Length, rows.Max(r => r.Cells[i].Length)))
            .ToArray();
        output.WriteLine(Line(header));
        foreach (var row in rows)
        {
            if (row.SeparatorBefore)
            {
                output.WriteLine(new string('-', widths.Sum() + 2 * (widths.Length - 1)));
            }

            output.WriteLine(Line(row.Cells));
        }

        string Line(IReadOnlyList<string> cells) =>
            string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))).TrimEnd();
    }

    internal static void WriteTable(IAnsiConsole console, string config, IReadOnlyList<MemoryPlan> plans, long? budgetBytes, string budgetNote)
    {
        console.MarkupLine("[bold]" + Markup.Escape(Heading(config, plans[0])) + "[/]");
        if (budgetBytes is not null)
        {
            console.MarkupLine(Markup.Escape($"budget: {ProcessMemory.Format(budgetBytes.Value)}{budgetNote}"));
        }

        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn(new TableColumn(""));
        foreach (var plan in plans)
        {
            table.AddColumn(new TableColumn("[bold]" + TrainingMethodNames.Format(plan.Options.Method) + "[/]").RightAligned());
        }

        foreach (var row in Rows(plans, budgetBytes))
        {
            if (row.SeparatorBefore)
            {
                table.AddEmptyRow();
            }

            table.AddRow(row.Cells.Select((c, i) => i == 0 ? Markup.Escape(c) : Colour(c)).ToArray());
        }

        console.Write(table);

        static string Colour(string cell) => cell switch
        {
            "yes" => "[green]yes[/]",
            "no" => "[red]no[/]",
            _ => Markup.Escape(cell),
        };
    }

    internal static void WriteJson(TextWriter output, string config, IReadOnlyList<MemoryPlan> plans, long? budgetBytes)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("config", config);
            writer.WriteNumber("parameters", plans[0].TotalParameters);
            if (budgetBytes is null)
            {
                writer.WriteNull("budget_bytes");
            }
            else
            {
                writer.WriteNumber("budget_bytes", budgetBytes.Value);
            }

            writer.WriteStartArray("plans");
            foreach (var plan in plans)
            {
                var o = plan.Options;
                writer.WriteStartObject();
                writer.WriteString("method", TrainingMethodNames.Format(o.Method));
                writer.WriteNumber("rank", o.Rank.GetValueOrDefault());
                writer.WriteNumber("seq_len", o.SequenceLength);
                writer.WriteNumber("batch_size", o.BatchSize);
                writer.WriteString("optimizer", o.Optimizer == OptimizerKind.AdamW8bit ? "adamw8bit" : "adamw");
                writer.WriteBoolean("per_layer", o.PerLayerUpdates);
                writer.WriteString("dtype", o.Dtype == ComputeDtype.Float32 ? "fp32" : "bf16");
                writer.WriteBoolean("quantize_w", o.QuantizeWeights && o.Method is TrainingMethod.Loqt or TrainingMethod.Lora);
                writer.WriteBoolean("quantize_p", o.QuantizeProjection && o.Method == TrainingMethod.Loqt);
                writer.WriteBoolean("double_quant", o.DoubleQuant);
                writer.WriteString("svd", o.Svd.Kind == LoQT.Loqt.SvdKind.Randomized ? "randomized" : "full");
                writer.WriteString("device", o.Device == DeviceKind.Cuda ? "cuda" : "cpu");
                writer.WriteNumber("trainable_parameters", plan.TrainableParameters);
                writer.WriteStartObject("bytes");
                foreach (var (key, bytes) in plan.Breakdown.Parts)
                {
                    writer.WriteNumber(key, bytes);
                }

                writer.WriteEndObject();
                writer.WriteNumber("total_bytes", plan.Total);
                writer.WriteNumber("steady_bytes", plan.Breakdown.SteadyTotal);
                if (budgetBytes is null)
                {
                    writer.WriteNull("fits");
                }
                else
                {
                    writer.WriteBoolean("fits", plan.FitsIn(budgetBytes.Value));
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        output.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
    }

    private static List<Row> Rows(IReadOnlyList<MemoryPlan> plans, long? budgetBytes)
    {
        var rows = RowLabels
            .Select(r => new Row([r.Label, .. plans.Select(p => ProcessMemory.Format(p.Breakdown.Parts.Single(x => x.Key == r.Key).Value))], false))
            .ToList();
        rows.Add(new Row(["Total (peak)", .. plans.Select(p => ProcessMemory.Format(p.Total))], true));
        rows.Add(new Row(["Between update steps", .. plans.Select(p => ProcessMemory.Format(p.Breakdown.SteadyTotal))], false));
        if (budgetBytes is not null)
        {
            rows.Add(new Row([$"Fits in {ProcessMemory.Format(budgetBytes.Value)}", .. plans.Select(p => p.FitsIn(budgetBytes.Value) ? "yes" : "no")], false));
        }

        return rows;
    }

    private static string Heading(string config, MemoryPlan plan)
    {
        var o = plan.Options;
        var parts = new List<string>
        {
            $"rank {o.Rank}",
            $"seq {o.SequenceLength} x batch {o.BatchSize}",
            o.Optimizer == OptimizerKind.AdamW8bit ? "adamw8bit" : "adamw",
        };
        if (o.PerLayerUpdates)
        {
            parts.Add("per-layer updates");
        }

        parts.Add(o.Dtype == ComputeDtype.Float32 ? "fp32" : "bf16");
        if (o.Method is TrainingMethod.Loqt or TrainingMethod.Lora)
        {
            var quantized = new List<string>();
            if (o.QuantizeWeights)
            {
                quantized.Add("W");
            }

            if (o.Method == TrainingMethod.Loqt && o.QuantizeProjection)
            {
                quantized.Add("P");
            }

            if (quantized.Count > 0)
            {
                parts.Add("NF4 " + string.Join("+", quantized) + (o.DoubleQuant ? " (double quant)" : ""));
            }
        }

        if (o.Svd.Kind == LoQT.Loqt.SvdKind.Randomized && o.Method is TrainingMethod.Loqt or TrainingMethod.LoqtNq or TrainingMethod.Galore)
        {
            parts.Add("randomized SVD");
        }

        parts.Add(o.Device == DeviceKind.Cuda ? "cuda" : "cpu");
        var count = plan.TotalParameters >= 1e9
            ? (plan.TotalParameters / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + "B"
            : (plan.TotalParameters / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + "M";
        return $"{config}: {count} parameters; {string.Join(", ", parts)}";
    }

    private static string ParseChoice(string value, string option, string[] choices) => RunShapeOptions.Choice(value, option, choices);

    private static long ParseBudget(string text)
    {
        try
        {
            return ByteSize.Parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException("--budget: " + e.Message, e);
        }
    }

    private static string MessageOf(Exception e) => RunShapeOptions.MessageOf(e);

    private static int Fail(TextWriter error, string message, int exitCode)
    {
        error.WriteLine("error: " + message);
        return exitCode;
    }

    private sealed record Row(string[] Cells, bool SeparatorBefore);
}

/// <summary>The values of <c>loqt memory</c>'s options, as typed.</summary>
internal sealed record MemoryRequest(
    string Config,
    int? Rank,
    int SequenceLength,
    int BatchSize,
    string Method,
    string Optimizer,
    bool PerLayer,
    string Dtype,
    bool QuantizeWeights,
    bool QuantizeProjection,
    bool DoubleQuant,
    string Device,
    string Svd,
    string? Budget,
    bool Json);
