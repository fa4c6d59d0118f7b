using System.CommandLine;
using LoQT.Data;
using LoQT.Hub;
using LoQT.Models.Llama;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt generate</c>: continue a prompt, streaming the text as it is generated.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "Model folder (config.json, safetensors weights, tokenizer) or Hub repo id.",
            Required = true,
        };
        var prompt = new Option<string>("--prompt") { Description = "The text to continue.", Required = true };
        var maxNewTokens = new Option<int>("--max-new-tokens") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 128 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature; 0 is greedy (always the most likely token).", DefaultValueFactory = _ => 0.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling: sample among the most likely tokens covering this probability (1 = all).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<int>("--seed") { Description = "Random seed for sampling.", DefaultValueFactory = _ => 0 };
        var noCache = new Option<bool>("--no-cache") { Description = "Recompute the whole sequence for every token instead of caching keys and values (slower; for checking)." };
        var dtype = ModelCommandOptions.DType();
        var quantize = ModelCommandOptions.Quantize();
        var noQuantize = ModelCommandOptions.NoQuantize();

        var command = new Command("generate", "Continue a prompt with a model, printing the text as it is generated.")
        {
            model, prompt, maxNewTokens, temperature, topP, seed, noCache, dtype, quantize, noQuantize,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            try
            {
                var quantizeChoice = ModelCommandOptions.QuantizeChoice(parse, quantize, noQuantize);
                var options = new GenerationOptions
                {
                    MaxNewTokens = parse.GetValue(maxNewTokens),
                    Temperature = parse.GetValue(temperature),
                    TopP = parse.GetValue(topP),
                    Seed = parse.GetValue(seed),
                    UseCache = !parse.GetValue(noCache),
                };
                try
                {
                    options.Validate();
                }
                catch (ArgumentOutOfRangeException e)
                {
                    await error.WriteLineAsync("error: " + e.Message.Split(" (Parameter", 2)[0]);
                    return LoqtCli.UsageError;
                }

                var directory = ModelCommandOptions.ResolveCheckpoint(
                    await HubCommandOptions.ResolveModelAsync(parse.GetRequiredValue(model), error, cancellationToken));
                var tokenizer = TokenizerLoader.FromDirectory(directory);
                var promptIds = tokenizer.Encode(parse.GetRequiredValue(prompt), addSpecialTokens: true);
                if (promptIds.Count == 0)
                {
                    await error.WriteLineAsync("error: the prompt has no tokens");
                    return LoqtCli.UsageError;
                }

                using var loaded = ModelCommandOptions.Load(directory, parse.GetRequiredValue(dtype), quantizeChoice, error, cancellationToken);
                var stops = loaded.Config.EosTokenIds.Concat(tokenizer.EosTokenId is { } eos ? [eos] : []).ToArray();
                var streamer = new TextStreamer(tokenizer, promptIds, output);
                foreach (var token in new LlamaGenerator(loaded).Generate(promptIds, options with { StopTokenIds = stops }, cancellationToken))
                {
                    streamer.Add(token);
                }

                streamer.Finish();
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

    /// <summary>
    /// Prints generated text as it grows: the decoded prompt + continuation minus what was printed, held back while the
    /// text ends in an incomplete UTF-8 sequence (a byte-fallback character split over tokens).
    /// </summary>
    private sealed class TextStreamer(ITokenizer tokenizer, IReadOnlyList<int> prompt, TextWriter output)
    {
        private readonly List<int> _ids = [.. prompt];
        private readonly string _promptText = tokenizer.Decode(prompt);
        private int _printed;

        public void Add(int token)
        {
            _ids.Add(token);
            var text = Continuation();
            if (text.Length > _printed && !text.EndsWith('\uFFFD'))
            {
                output.Write(text[_printed..]);
                output.Flush();
                _printed = text.Length;
            }
        }

        public void Finish()
        {
            var text = Continuation();
            if (text.Length > _printed)
            {
                output.Write(text[_printed..]);
            }

            output.WriteLine();
            output.Flush();
        }

        private string Continuation()
        {
            var full = tokenizer.Decode(_ids);
            return full.StartsWith(_promptText, StringComparison.Ordinal)
                ? full[_promptText.Length..]
                : tokenizer.Decode(_ids.Skip(prompt.Count));
        }
    }
}
