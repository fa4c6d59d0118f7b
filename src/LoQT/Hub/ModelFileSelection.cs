using System.Collections.Frozen;

namespace LoQT.Hub;

/// <summary>
/// The files a model needs from its repository: configs, tokenizer files and weights: the safetensors (and their
/// index) when there are any, else the PyTorch <c>.bin</c> shards. Never <c>*.bin</c>, <c>*.pth</c> or <c>*.pt</c> when
/// safetensors exist; nothing from sub-folders (such as Meta's <c>original/</c> checkpoints).
/// </summary>
internal static class ModelFileSelection
{
    private static readonly FrozenSet<string> SmallFiles = new[]
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
    }.ToFrozenSet(StringComparer.Ordinal);

    private static readonly FrozenSet<string> TokenizerFiles = new[]
    {
        "config.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
    }.ToFrozenSet(StringComparer.Ordinal);

    public static IReadOnlyList<string> Select(IEnumerable<string> repoFiles)
    {
        var topLevel = repoFiles.Where(static f => !f.Contains('/', StringComparison.Ordinal)).ToList();
        var hasSafetensors = topLevel.Any(static f => f.EndsWith(".safetensors", StringComparison.Ordinal));
        return topLevel.Where(f => SmallFiles.Contains(f) || (hasSafetensors ? IsSafetensorsWeight(f) : IsPyTorchWeight(f))).ToList();
    }

    /// <summary>The top-level tokenizer files (and config.json, which holds BOS/EOS fallbacks); empty when there is no tokenizer.json or tokenizer.model.</summary>
    public static IReadOnlyList<string> SelectTokenizer(IEnumerable<string> repoFiles)
    {
        var topLevel = repoFiles.Where(static f => !f.Contains('/', StringComparison.Ordinal)).ToList();
        return topLevel.Any(static f => f is "tokenizer.json" or "tokenizer.model")
            ? topLevel.Where(static f => TokenizerFiles.Contains(f)).ToList()
            : [];
    }

    private static bool IsSafetensorsWeight(string file) =>
        file.EndsWith(".safetensors", StringComparison.Ordinal) || file.EndsWith(".safetensors.index.json", StringComparison.Ordinal);

    private static bool IsPyTorchWeight(string file) =>
        file.StartsWith("pytorch_model", StringComparison.Ordinal) &&
        (file.EndsWith(".bin", StringComparison.Ordinal) || file.EndsWith(".bin.index.json", StringComparison.Ordinal));
}
