namespace LoQT.Data;

/// <summary>One document of a dataset file, before tokenization, with where it came from (for error messages).</summary>
internal sealed record DatasetRecord(string File, long Line, DatasetRecordKind Kind)
{
    /// <summary>The text of a <see cref="DatasetRecordKind.Text"/> record.</summary>
    public string? Text { get; init; }

    /// <summary>The prompt of a <see cref="DatasetRecordKind.PromptCompletion"/> record.</summary>
    public string? Prompt { get; init; }

    /// <summary>The completion of a <see cref="DatasetRecordKind.PromptCompletion"/> record.</summary>
    public string? Completion { get; init; }

    /// <summary>The ids of a <see cref="DatasetRecordKind.PreTokenized"/> record.</summary>
    public int[]? InputIds { get; init; }

    public string Location => $"{File}:{Line}";
}
