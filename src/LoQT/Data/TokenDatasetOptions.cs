namespace LoQT.Data;

/// <summary>How <see cref="TokenDataset.LoadAsync"/> turns records into training or evaluation sequences.</summary>
public sealed record TokenDatasetOptions
{
    /// <summary>Tokens per sequence (the model's context for training/eval). At least 2, since the loss predicts token t+1 from t.</summary>
    public required int SequenceLength { get; init; }

    /// <summary>
    /// <c>true</c> (default): documents are concatenated (with BOS/EOS between them, see <see cref="TokenDataset"/>)
    /// and cut into blocks of <see cref="SequenceLength"/> tokens; the last block may be shorter and is padded.
    /// <c>false</c> (<c>--no-pack</c>): each document is its own sequence, cut to <see cref="SequenceLength"/>,
    /// and batches are padded to their longest sequence.
    /// </summary>
    public bool Pack { get; init; } = true;

    /// <summary>A <c>.txt</c> file is one document rather than one document per non-blank line.</summary>
    public bool WholeTextFiles { get; init; }

    /// <summary>Stop reading once this many tokens (BOS/EOS included) are stored; the last document is cut to fit. <c>null</c>: read everything.</summary>
    public long? MaxTokens { get; init; }
}
