using System.Globalization;
using System.Text;
using System.Text.Json;

namespace LoQT.Data;

/// <summary>One arithmetic problem of the demo corpus, e.g. <c>12+35=47</c>.</summary>
/// <param name="Left">The left operand.</param>
/// <param name="Operator">'+' or '-'.</param>
/// <param name="Right">The right operand.</param>
public readonly record struct ArithmeticProblem(int Left, char Operator, int Right)
{
    /// <summary>The correct result.</summary>
    public int Result => Operator == '+' ? Left + Right : Left - Right;

    /// <summary>What the model is given: <c>12+35=</c>.</summary>
    public string Prompt => string.Create(CultureInfo.InvariantCulture, $"{Left}{Operator}{Right}=");

    /// <summary>What the model must produce after the prompt: <c>47</c>.</summary>
    public string Answer => Result.ToString(CultureInfo.InvariantCulture);

    /// <summary>The whole line, prompt and answer.</summary>
    public string Text => Prompt + Answer;
}

/// <summary>
/// A small corpus the offline demo makes for itself: addition and subtraction of two numbers below a bound, with
/// a held-out split whose operand pairs never occur in training (so exact-match accuracy on it measures
/// generalization, not recall), and a character-level tokenizer in Hugging Face <c>tokenizer.json</c> format.
/// </summary>
public sealed class ArithmeticCorpus
{
    /// <summary>The characters of the corpus, in vocabulary order after the four special tokens.</summary>
    public const string Alphabet = "0123456789+-=";

    private ArithmeticCorpus(IReadOnlyList<ArithmeticProblem> train, IReadOnlyList<ArithmeticProblem> heldOut)
    {
        Train = train;
        HeldOut = heldOut;
    }

    /// <summary>Training problems.</summary>
    public IReadOnlyList<ArithmeticProblem> Train { get; }

    /// <summary>Held-out problems (operand pairs disjoint from <see cref="Train"/>).</summary>
    public IReadOnlyList<ArithmeticProblem> HeldOut { get; }

    /// <summary>Makes every problem with operands in [0, <paramref name="operandBound"/>) and splits them at random.</summary>
    /// <param name="operandBound">Operands are below this (e.g. 100: two-digit arithmetic).</param>
    /// <param name="heldOutFraction">Share of problems kept out of training, in (0, 1).</param>
    /// <param name="seed">Seed of the split.</param>
    public static ArithmeticCorpus Generate(int operandBound, double heldOutFraction, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(operandBound, 2);
        if (heldOutFraction is <= 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(heldOutFraction), heldOutFraction, "The held-out fraction must lie strictly between 0 and 1.");
        }

        var all = new List<ArithmeticProblem>(operandBound * operandBound * 2);
        for (var a = 0; a < operandBound; a++)
        {
            for (var b = 0; b < operandBound; b++)
            {
                all.Add(new ArithmeticProblem(a, '+', b));
                all.Add(new ArithmeticProblem(a, '-', b));
            }
        }

        var random = new Random(seed);
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(all));
        var heldOut = Math.Max(1, (int)(all.Count * heldOutFraction));
        return new ArithmeticCorpus(all[heldOut..], all[..heldOut]);
    }

    /// <summary>Writes <c>train.jsonl</c> and <c>valid.jsonl</c> (<c>{"text": "12+35=47"}</c> per line) into a directory.</summary>
    /// <returns>The paths of the two files.</returns>
    public (string Train, string Valid) WriteJsonl(string directory) =>
        WriteSplits(directory, p => $"{{\"text\":\"{p.Text}\"}}");

    /// <summary>
    /// Writes <c>train.jsonl</c> and <c>valid.jsonl</c> as prompt/completion records (<c>{"prompt": "12+35=",
    /// "completion": "47"}</c> per line), for training and scoring on the answers only (<c>--task completion</c>).
    /// </summary>
    /// <returns>The paths of the two files.</returns>
    public (string Train, string Valid) WriteCompletionJsonl(string directory) =>
        WriteSplits(directory, p => $"{{\"prompt\":\"{p.Prompt}\",\"completion\":\"{p.Answer}\"}}");

    /// <summary>
    /// Writes a character-level tokenizer (<c>tokenizer.json</c>, a BPE model with no merges, and
    /// <c>tokenizer_config.json</c>) that Hugging Face tokenizers and <see cref="TokenizerLoader"/> both load.
    /// Ids: 0 <c>&lt;unk&gt;</c>, 1 <c>&lt;s&gt;</c>, 2 <c>&lt;/s&gt;</c>, 3 <c>&lt;pad&gt;</c>, then <see cref="Alphabet"/>.
    /// </summary>
    public static void WriteCharacterTokenizer(string directory)
    {
        Directory.CreateDirectory(directory);
        string[] specials = ["<unk>", "<s>", "</s>", "<pad>"];
        var vocab = specials.Concat(Alphabet.Select(c => c.ToString())).Select((token, id) => (token, id)).ToList();
        var tokenizer = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = specials.Select((s, id) => new Dictionary<string, object>
            {
                ["id"] = id, ["content"] = s, ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            }).ToList(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = null,
            ["post_processor"] = null,
            ["decoder"] = new Dictionary<string, object> { ["type"] = "Fuse" },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = "<unk>", ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab.ToDictionary(v => v.token, v => v.id),
                ["merges"] = Array.Empty<string>(),
            },
        };
        var config = new Dictionary<string, object>
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["unk_token"] = "<unk>", ["pad_token"] = "<pad>",
            ["add_bos_token"] = true, ["add_eos_token"] = false, ["clean_up_tokenization_spaces"] = false,
            ["model_max_length"] = 64,
        };
        var options = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), JsonSerializer.Serialize(tokenizer, options));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), JsonSerializer.Serialize(config, options));
    }

    /// <summary>The vocabulary size of <see cref="WriteCharacterTokenizer"/>'s tokenizer.</summary>
    public static int CharacterVocabularySize => 4 + Alphabet.Length;

    // The corpus alphabet needs no JSON escaping, so records are written as they are.
    private (string Train, string Valid) WriteSplits(string directory, Func<ArithmeticProblem, string> record)
    {
        Directory.CreateDirectory(directory);
        var train = Path.Combine(directory, "train.jsonl");
        var valid = Path.Combine(directory, "valid.jsonl");
        WriteLines(train, Train, record);
        WriteLines(valid, HeldOut, record);
        return (train, valid);
    }

    private static void WriteLines(string path, IEnumerable<ArithmeticProblem> problems, Func<ArithmeticProblem, string> record)
    {
        var text = new StringBuilder();
        foreach (var p in problems)
        {
            text.Append(record(p)).Append('\n');
        }

        File.WriteAllText(path, text.ToString());
    }
}
