using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using LoQT.Quantization;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt info PATH</c>: what a safetensors file or checkpoint folder holds.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path")
        {
            Description = "A .safetensors file, a model.safetensors.index.json, or a checkpoint folder.",
        };
        var json = new Option<bool>("--json") { Description = "Print everything as one JSON object." };
        var summary = new Option<bool>("--summary") { Description = "Leave out the per-tensor list." };

        var command = new Command(
            "info",
            "Show a checkpoint's tensors (name, dtype, shape, bytes; NF4 weights with their quant state folded in), the parameter " +
            "count, total bytes, the quantization found, and a summary of the config.json beside it.")
        {
            path, json, summary,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            try
            {
                var report = CheckpointReport.Build(parse.GetValue(path)!);
                if (parse.GetValue(json))
                {
                    var node = report.ToJson();
                    if (parse.GetValue(summary))
                    {
                        node.Remove("tensors");
                    }

                    output.WriteLine(node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                }
                else
                {
                    Print(report, !parse.GetValue(summary), output);
                }

                return 0;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or KeyNotFoundException)
            {
                parse.InvocationConfiguration.Error.WriteLine("error: " + e.Message);
                return 1;
            }
        });
        return command;
    }

    private static void Print(CheckpointReport report, bool tensors, TextWriter output)
    {
        var c = CultureInfo.InvariantCulture;
        output.WriteLine(report.Path);
        output.WriteLine(report.Sharded
            ? string.Create(c, $"  sharded: {report.Files.Count} files, {QuantizeCommand.Bytes(report.FileBytes)}")
            : $"  single file, {QuantizeCommand.Bytes(report.FileBytes)}");
        foreach (var (key, value) in report.Metadata)
        {
            output.WriteLine($"  metadata {key}: {value}");
        }

        if (tensors)
        {
            output.WriteLine();
            var nameWidth = Math.Min(72, report.Tensors.Select(t => t.Name.Length).DefaultIfEmpty(4).Max());
            output.WriteLine($"{"name".PadRight(nameWidth)}  {"dtype",-5}  {"shape",-18}  {"parameters",14}  {"bytes",12}");
            foreach (var t in report.Tensors)
            {
                var shape = "[" + string.Join(", ", t.Shape) + "]";
                var extra = t.Nf4 is null ? string.Empty : $"  block {t.Nf4.BlockSize}{(t.Nf4.DoubleQuant ? ", double quant" : string.Empty)}, from {t.Nf4.OriginalDType}";
                output.WriteLine(string.Create(c, $"{t.Name.PadRight(nameWidth)}  {t.DType,-5}  {shape,-18}  {t.Parameters,14:N0}  {t.Bytes,12:N0}{extra}"));
            }
        }

        output.WriteLine();
        output.WriteLine(string.Create(c, $"tensors:     {report.Tensors.Count}"));
        output.WriteLine(string.Create(c, $"parameters:  {report.Parameters:N0}"));
        output.WriteLine(string.Create(c, $"bytes:       {report.TensorBytes:N0} ({QuantizeCommand.Bytes(report.TensorBytes)})"));
        output.WriteLine(string.Create(c, $"dtypes:      {string.Join(", ", report.Tensors.GroupBy(t => t.DType).Select(g => $"{g.Key} x{g.Count()}"))}"));
        output.WriteLine(report.Quantization is { } q
            ? string.Create(c, $"quantization: {q.Method} {q.Type}, {q.Weights} weights ({q.Parameters:N0} parameters), block size {string.Join("/", q.BlockSizes)}, double quant {(q.DoubleQuant ? "yes" : "no")}")
            : "quantization: none");

        if (report.Config is null)
        {
            output.WriteLine("config:      no config.json beside the checkpoint");
            return;
        }

        output.WriteLine($"config:      {report.ConfigPath}");
        foreach (var key in CheckpointReport.ConfigKeys.Where(report.Config.ContainsKey))
        {
            output.WriteLine($"  {key}: {report.Config[key]?.ToJsonString() ?? "null"}");
        }

        if (QuantizationConfig.FromConfig(report.Config) is null && report.Quantization is not null)
        {
            output.WriteLine("  note: the weights are NF4 but config.json has no bitsandbytes 4-bit quantization_config");
        }
    }
}
