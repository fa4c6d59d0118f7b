using System.CommandLine;
using System.Globalization;
using LoQT.Data;
using LoQT.Hub;

namespace LoQT.Tool.Commands;

/// <summary><c>loqt tokenize</c>: the token ids of a text under a model's tokenizer.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model")
        {
            Description = "Model or tokenizer directory (tokenizer.json or tokenizer.model, with tokenizer_config.json for BOS/EOS), or a Hub repo id (only its tokenizer files are downloaded).",
            Required = true,
        };
        var text = new Option<string>("--text") { Description = "The text to tokenize.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the ids as a JSON array." };
        var special = new Option<bool>("--special")
        {
            Description = "Add the special tokens the tokenizer puts around a sequence (BOS/EOS, as tokenizer_config.json says).",
        };

        var command = new Command("tokenize", "Print the token ids of a text, separated by spaces (or as JSON with --json).")
        {
            model, text, json, special,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            try
            {
                var directory = await HubCommandOptions.ResolveTokenizerAsync(
                    parseResult.GetRequiredValue(model), parseResult.InvocationConfiguration.Error, cancellationToken);
                var tokenizer = TokenizerLoader.FromDirectory(directory);
                var ids = tokenizer.Encode(parseResult.GetRequiredValue(text), parseResult.GetValue(special))
                    .Select(id => id.ToString(CultureInfo.InvariantCulture));
                await output.WriteLineAsync(parseResult.GetValue(json) ? "[" + string.Join(",", ids) + "]" : string.Join(' ', ids));
                return 0;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException or ArgumentException or HubException)
            {
                await parseResult.InvocationConfiguration.Error.WriteLineAsync("error: " + e.Message);
                return 1;
            }
        });
        return command;
    }
}
