namespace LoQT.Data;

/// <summary>Progress of <see cref="TokenDataset.LoadAsync"/>: the file being read and the totals so far.</summary>
/// <param name="File">The file being read.</param>
/// <param name="Documents">Documents tokenized so far.</param>
/// <param name="Tokens">Tokens stored so far.</param>
public readonly record struct DatasetLoadProgress(string File, long Documents, long Tokens);
