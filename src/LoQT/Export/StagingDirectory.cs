namespace LoQT.Export;

/// <summary>
/// Builds a folder atomically: everything is written into a temporary sibling (<c>.NAME.export-XXXX.tmp</c>), which
/// <see cref="Commit"/> renames onto the target only once complete. Disposing without a commit deletes the temporary
/// folder, so a failed or cancelled export leaves the target as it was (absent, empty, or the previous export).
/// </summary>
internal sealed class StagingDirectory : IDisposable
{
    private bool committed;

    private StagingDirectory(string target, string path, bool replace)
    {
        Target = target;
        Path = path;
        Replace = replace;
    }

    /// <summary>The folder being built (full path).</summary>
    public string Target { get; }

    /// <summary>The temporary folder to write into.</summary>
    public string Path { get; }

    /// <summary>Whether a non-empty <see cref="Target"/> is replaced at <see cref="Commit"/>.</summary>
    public bool Replace { get; }

    /// <summary>
    /// Checks that <paramref name="target"/> may be written (absent, an empty folder, or any folder with
    /// <paramref name="replace"/>), without creating anything.
    /// </summary>
    /// <param name="target">The folder to build.</param>
    /// <param name="replace">Whether an existing non-empty folder may be replaced.</param>
    /// <exception cref="IOException">The target is a file, or a non-empty folder without <paramref name="replace"/>.</exception>
    public static void CheckTarget(string target, bool replace)
    {
        var full = System.IO.Path.GetFullPath(target);
        if (File.Exists(full))
        {
            throw new IOException($"the output {full} is a file; give a folder path");
        }

        if (!replace && Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
        {
            throw new IOException($"the output {full} exists and is not empty; choose another folder or pass --force to replace it once the new export is complete");
        }
    }

    /// <summary>Creates the temporary folder beside <paramref name="target"/> (after <see cref="CheckTarget"/>).</summary>
    /// <param name="target">The folder to build.</param>
    /// <param name="replace">Whether an existing non-empty folder may be replaced.</param>
    public static StagingDirectory Create(string target, bool replace)
    {
        CheckTarget(target, replace);
        var full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(target));
        var parent = System.IO.Path.GetDirectoryName(full) ?? throw new IOException($"the output {full} has no parent folder");
        Directory.CreateDirectory(parent);
        var temp = System.IO.Path.Combine(parent, $".{System.IO.Path.GetFileName(full)}.export-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        return new StagingDirectory(full, temp, replace);
    }

    /// <summary>
    /// Renames the temporary folder onto the target. An empty target folder is removed first; a non-empty one (with
    /// <see cref="Replace"/>) is first renamed aside and deleted after the new folder is in place.
    /// </summary>
    public void Commit()
    {
        ObjectDisposedException.ThrowIf(committed, this);
        string? old = null;
        if (Directory.Exists(Target))
        {
            if (!Directory.EnumerateFileSystemEntries(Target).Any())
            {
                Directory.Delete(Target);
            }
            else
            {
                if (!Replace)
                {
                    throw new IOException($"the output {Target} was filled by someone else during the export; nothing was replaced");
                }

                old = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(Target)!, $".{System.IO.Path.GetFileName(Target)}.replaced-{Guid.NewGuid():N}.tmp");
                Directory.Move(Target, old);
            }
        }

        try
        {
            Directory.Move(Path, Target);
        }
        catch when (old is not null)
        {
            Directory.Move(old, Target); // put the previous export back
            throw;
        }

        committed = true;
        if (old is not null)
        {
            Directory.Delete(old, recursive: true);
        }
    }

    /// <summary>Deletes the temporary folder unless it was committed.</summary>
    public void Dispose()
    {
        if (!committed && Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }

        committed = true;
    }
}
