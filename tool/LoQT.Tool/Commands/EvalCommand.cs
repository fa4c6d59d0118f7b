using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LoQT.Data;
using LoQT.Hub;
using LoQT.Models.Llama;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt eval</c>: mean next-token loss and perplexity of a model over a dataset.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "Model folder (config.json, safetensors weights, tokenizer) or Hub repo id.",
            Required = true,
        };
        var dataset = new Option<string>("--dataset")
        {
            Description = "A .txt or .jsonl file (\"text\", \"input_ids\" or \"prompt\"+\"completion\" records) or a folder of them.",
            Required = true,
        };
        var seqLen = new Option<int?>("--seq-len") { Description = "Tokens per sequence (default: the model's max_position_embeddings, at most 1024)." };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per forward pass.", DefaultValueFactory = _ => 1 };
        var maxTokens = new Option<long?>("--max-tokens") { Description = "Read only this many tokens of the dataset." };
        var noPack = new Option<bool>("--no-pack") { Description = "Score each document as its own sequence (padded in batches) instead of packing documents into blocks." };
        var json = new Option<bool>("--json") { Description = "End with one JSON line: {\"loss\":…,\"perplexity\":…,\"tokens\":…}." };
        var dtype = ModelCommandOptions.DType();
        var quantize = ModelCommandOptions.Quantize();
        var noQuantize = ModelCommandOptions.NoQuantize();

        var command = new Command("eval", "Mean next-token loss and perplexity of a model over a dataset. Progress goes to stderr.")
        {
            model, dataset, seqLen, batchSize, maxTokens, noPack, json, dtype, quantize, noQuantize,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            try
            {
                var quantizeChoice = ModelCommandOptions.QuantizeChoice(parse, quantize, noQuantize);
                if (parse.GetValue(batchSize) < 1 || parse.GetValue(seqLen) is < 2 || parse.GetValue(maxTokens) is < 1)
                {
                    await error.WriteLineAsync("error: --batch-size must be at least 1, --seq-len at least 2 and --max-tokens at least 1");
                    return LoqtCli.UsageError;
                }

                var directory = ModelCommandOptions.ResolveCheckpoint(
                    await HubCommandOptions.ResolveModelAsync(parse.GetRequiredValue(model), error, cancellationToken));
                var config = LlamaConfig.Load(directory);
                var tokenizer = HasTokenizer(directory) ? TokenizerLoader.FromDirectory(directory) : null;
                var options = new TokenDatasetOptions
                {
                    SequenceLength = parse.GetValue(seqLen) ?? Math.Min(config.MaxPositionEmbeddings, 1024),
                    Pack = !parse.GetValue(noPack),
                    MaxTokens = parse.GetValue(maxTokens),
                };
                var data = await TokenDataset.LoadAsync(parse.GetRequiredValue(dataset), tokenizer, options, null, cancellationToken);
                await error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"dataset: {data.TokenCount} tokens in {data.Count} sequences of up to {options.SequenceLength}"));

                using var loaded = ModelCommandOptions.Load(directory, parse.GetRequiredValue(dtype), quantizeChoice, error, cancellationToken);
                var timer = Stopwatch.StartNew();
                var lastReport = TimeSpan.Zero;
                var progress = new EvalProgress(p =>
                {
                    if (timer.Elapsed - lastReport > TimeSpan.FromSeconds(2) || p.Batches == p.TotalBatches)
                    {
                        lastReport = timer.Elapsed;
                        error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"eval: batch {p.Batches}/{p.TotalBatches}, {p.Tokens} tokens, loss {p.Loss:0.0000}, {timer.Elapsed.TotalSeconds:0.0} s"));
                    }
                });
                var result = LlamaEvaluator.Evaluate(loaded, data, parse.GetValue(batchSize), progress, cancellationToken);
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{{\"loss\":{result.Loss:R},\"perplexity\":{result.Perplexity:R},\"tokens\":{result.Tokens}}}"));
                }
                else
                {
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"loss {result.Loss:0.0000}  perplexity {result.Perplexity:0.000}  tokens {result.Tokens}"));
                }

                return 0;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException or UnauthorizedAccessException or HubException or InvalidOperationException)
            {
                await error.WriteLineAsync("error: " + e.Message);
                return 1;
            }
        });
        return command;
    }

    private static bool HasTokenizer(string directory) =>
        File.Exists(Path.Combine(directory, "tokenizer.json")) || File.Exists(Path.Combine(directory, "tokenizer.model"));

    private sealed class EvalProgress(Action<EvaluationProgress> report) : IProgress<EvaluationProgress>
    {
        public void Report(EvaluationProgress value) => report(value);
    }
}
