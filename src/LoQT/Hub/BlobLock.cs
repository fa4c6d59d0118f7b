namespace LoQT.Hub;

/// <summary>
/// Exclusive lock on one blob across threads and processes: an open <see cref="FileStream"/> with
/// <see cref="FileShare.None"/> on <c>.locks/&lt;repo&gt;/&lt;etag&gt;.lock</c> (an advisory <c>flock</c> on Unix, which is
/// also what Python's filelock takes, so .NET and Python downloads exclude each other).
/// </summary>
internal static class BlobLock
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan ReportEvery = TimeSpan.FromSeconds(10);

    public static async Task<IDisposable> AcquireAsync(string lockPath, Action<string>? log, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        var waited = TimeSpan.Zero;
        var nextReport = TimeSpan.Zero;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(lockPath))
            {
                if (waited >= nextReport)
                {
                    log?.Invoke($"waiting for another download of the same file to finish (lock {lockPath})");
                    nextReport += ReportEvery;
                }

                await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
                waited += PollInterval;
            }
        }
    }
}
