namespace LoQT.Data;

/// <summary>What the records of a dataset hold. A dataset holds one kind.</summary>
public enum DatasetRecordKind
{
    /// <summary>Plain text (<c>.txt</c> lines or files, <c>.jsonl</c> with <c>"text"</c>); every token is trained on.</summary>
    Text,

    /// <summary><c>.jsonl</c> with <c>"prompt"</c> and <c>"completion"</c>; only completion tokens (and the EOS after them) are trained on.</summary>
    PromptCompletion,

    /// <summary><c>.jsonl</c> with <c>"input_ids"</c>: token ids used exactly as given (no BOS/EOS added); every token is trained on.</summary>
    PreTokenized,
}
