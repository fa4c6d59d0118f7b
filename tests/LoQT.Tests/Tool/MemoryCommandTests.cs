using System.CommandLine;
using System.Text.Json;
using LoQT.Tool;
using LoQT.Tool.Commands;
using LoQT.Training;
using Spectre.Console;

namespace LoQT.Tests.Tool;

public class MemoryCommandTests
{
    private static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = LoqtCli.CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }

    [Fact]
    public void Table_ShowsEveryPartForLoqtFullAndGalore()
    {
        var (exitCode, output, error) = Run("memory", "--config", "130m", "--budget", "24GiB");

        Assert.Equal(0, exitCode);
        Assert.Equal("", error);
        var lines = output.Split('\n');
        Assert.Matches(@"^\s+loqt\s+full\s+galore$", lines.Single(l => l.Contains("galore", StringComparison.Ordinal)).TrimEnd('\r'));
        foreach (var part in new[] { "Weights W", "Projections P", "Adapters", "Embeddings, norms, lm_head", "Gradients", "Optimizer state", "Activations", "Workspace", "Update-step transient", "Framework overhead", "Total (peak)" })
        {
            Assert.Contains(lines, l => l.StartsWith(part, StringComparison.Ordinal));
        }

        Assert.Matches(@"Fits in 24\.00 GiB\s+yes\s+yes\s+yes", output);
        Assert.StartsWith("130m: 134.1M parameters; rank 128, seq 256 x batch 1, adamw, bf16, NF4 W+P, cpu", output);
    }

    [Fact]
    public void Table_SaysWhichMethodsDoNotFitTheBudget()
    {
        var (exitCode, output, _) = Run("memory", "--config", "13b", "--rank", "512", "--optimizer", "adamw8bit", "--per-layer", "--double-quant", "--budget", "24GiB");

        Assert.Equal(0, exitCode);
        Assert.Matches(@"Fits in 24\.00 GiB\s+yes\s+no\s+no", output);
    }

    [Fact]
    public void Table_ForAFullRunComparesOnlyWithGalore()
    {
        var (_, output, _) = Run("memory", "--config", "20m", "--method", "full", "--budget", "1GiB");

        Assert.Contains(output.Split('\n'), l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+full\s+galore\s*$"));
    }

    [Fact]
    public void Json_HoldsOnePlanPerMethodWithPartsThatAddUpToTheTotal()
    {
        var (exitCode, output, _) = Run("memory", "--config", "7b", "--rank", "1024", "--optimizer", "adamw8bit", "--per-layer", "--budget", "16GiB", "--json");

        Assert.Equal(0, exitCode);
        using var json = JsonDocument.Parse(output);
        var root = json.RootElement;
        Assert.Equal(16L << 30, root.GetProperty("budget_bytes").GetInt64());
        Assert.Equal(6_738_415_616L, root.GetProperty("parameters").GetInt64());
        var plans = root.GetProperty("plans").EnumerateArray().ToList();
        Assert.Equal(["loqt", "full", "galore"], plans.Select(p => p.GetProperty("method").GetString()));
        foreach (var plan in plans)
        {
            var total = plan.GetProperty("total_bytes").GetInt64();
            Assert.Equal(total, plan.GetProperty("bytes").EnumerateObject().Sum(p => p.Value.GetInt64()));
            Assert.Equal(total <= 16L << 30, plan.GetProperty("fits").GetBoolean());
            Assert.Equal(1024, plan.GetProperty("rank").GetInt32());
            Assert.Equal("adamw8bit", plan.GetProperty("optimizer").GetString());
        }
    }

    [Fact]
    public void Json_OnCudaWithoutABudget_LeavesFitOpen()
    {
        var (_, output, _) = Run("memory", "--config", "9m", "--device", "cuda", "--json");

        using var json = JsonDocument.Parse(output);
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("budget_bytes").ValueKind);
        Assert.All(json.RootElement.GetProperty("plans").EnumerateArray(), p => Assert.Equal(JsonValueKind.Null, p.GetProperty("fits").ValueKind));
    }

    [Fact]
    public void BadBudget_IsAUsageErrorThatShowsTheAcceptedForm()
    {
        var (exitCode, output, error) = Run("memory", "--config", "7b", "--budget", "24XB");

        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        Assert.StartsWith("error: --budget: '24XB' is not a memory size", error);
    }

    [Fact]
    public void UnknownPreset_IsAUsageErrorListingThePresets()
    {
        var (exitCode, _, error) = Run("memory", "--config", "3b");

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: '3b' is neither a Llama preset (9m, 20m, 35m, 60m, 130m, 350m, 1b, 7b, 13b)", error);
        Assert.DoesNotContain("Parameter", error);
    }

    [Fact]
    public void UnknownMethod_IsAUsageErrorListingTheMethods()
    {
        var (exitCode, _, error) = Run("memory", "--config", "7b", "--method", "qlora");

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: Unknown method 'qlora'. Valid methods: loqt, loqt-nq, full, lora, galore.", error);
    }

    [Fact]
    public void UnknownOptimizer_IsAUsageError()
    {
        var (exitCode, _, error) = Run("memory", "--config", "7b", "--optimizer", "sgd");

        Assert.Equal(2, exitCode);
        Assert.StartsWith("error: --optimizer must be one of adamw, adamw8bit (got 'sgd').", error);
    }

    [Fact]
    public void RankTooLargeForTheModel_IsAUsageErrorNamingTheLimit()
    {
        var (exitCode, _, error) = Run("memory", "--config", "9m", "--rank", "128");

        Assert.Equal(2, exitCode);
        Assert.Contains("at most 127", error);
    }

    [Fact]
    public void ConfigFileThatIsNotJson_FailsWithItsPath()
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory("loqt-memory-").FullName, "config.json");
        File.WriteAllText(file, "not json");

        var (exitCode, _, error) = Run("memory", "--config", file);

        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: " + file + ": not a valid config.json", error);
    }

    [Fact]
    public void SpectreTable_HasTheSameRowsAndVerdicts()
    {
        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(text), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
        var planner = new MemoryPlanner();
        var config = LoQT.Models.Llama.LlamaPresets.GetConfigJson("20m");
        var plans = MemoryCommand.ComparedMethods(TrainingMethod.Loqt).Select(m => planner.Plan(config, new MemoryPlanOptions { Method = m })).ToList();

        MemoryCommand.WriteTable(console, "20m", plans, 1L << 30, "");

        var rendered = text.ToString();
        Assert.Contains("Update-step transient", rendered);
        Assert.Contains("Total (peak)", rendered);
        Assert.Contains(ProcessMemory.Format(plans[0].Total), rendered);
        Assert.Contains("Fits in 1.00 GiB", rendered);
    }
}
