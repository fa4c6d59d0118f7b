using LoQT.Hub;

namespace LoQT.Export;

/// <summary>
/// What a checkpoint's base model was, as far as the model card can tell: its Hub id (from the Hugging Face cache path
/// a Hub download lives at), a name to show, and the license its own model card declares, when that card is at hand.
/// </summary>
/// <param name="HubId">The Hub repository id (<c>org/name</c>), or null when the base was not downloaded from the Hub.</param>
/// <param name="DisplayName">What to call the base: the Hub id, a folder name, or null for a random initialization.</param>
/// <param name="License">The <c>license</c> of the base's README.md front matter, or null when unknown.</param>
internal sealed record BaseModelReference(string? HubId, string? DisplayName, string? License)
{
    private const string CachePrefix = "models--";

    /// <summary>Interprets <see cref="Training.TrainerState.BaseModel"/>: a model folder, or a note such as "random init".</summary>
    /// <param name="baseModel">The recorded base model, or null.</param>
    public static BaseModelReference Resolve(string? baseModel)
    {
        if (string.IsNullOrWhiteSpace(baseModel))
        {
            return new BaseModelReference(null, null, null);
        }

        if (!Path.IsPathRooted(baseModel) && !Directory.Exists(baseModel) && HubRepoId.TryParse(baseModel, out var named))
        {
            return new BaseModelReference(named.Id, named.Id, null);
        }

        if (!LooksLikePath(baseModel))
        {
            return new BaseModelReference(null, null, null); // "random init" and other notes
        }

        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(baseModel));
        var hubId = HubIdOfCachePath(full);
        var license = Directory.Exists(full) ? LicenseOf(Path.Combine(full, "README.md")) : null;
        return new BaseModelReference(hubId, hubId ?? Path.GetFileName(full), license);
    }

    /// <summary>
    /// The repo id of a path inside the huggingface_hub cache layout (<c>…/models--org--name/snapshots/commit</c>), or null.
    /// </summary>
    /// <param name="path">A full path.</param>
    public static string? HubIdOfCachePath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var parts = path.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i + 1 < parts.Length; i++)
        {
            if (parts[i].StartsWith(CachePrefix, StringComparison.Ordinal) && parts[i + 1] == "snapshots")
            {
                var rest = parts[i][CachePrefix.Length..];
                var separator = rest.IndexOf("--", StringComparison.Ordinal);
                var id = separator < 0 ? rest : rest[..separator] + "/" + rest[(separator + 2)..];
                return HubRepoId.TryParse(id, out var repo) ? repo.Id : null;
            }
        }

        return null;
    }

    /// <summary>The <c>license:</c> value of a model card's YAML front matter, or null.</summary>
    /// <param name="readmePath">The README.md.</param>
    public static string? LicenseOf(string readmePath)
    {
        if (!File.Exists(readmePath))
        {
            return null;
        }

        using var reader = new StreamReader(readmePath);
        if (reader.ReadLine()?.Trim() != "---")
        {
            return null;
        }

        for (var line = reader.ReadLine(); line is not null && line.Trim() != "---"; line = reader.ReadLine())
        {
            if (line.StartsWith("license:", StringComparison.Ordinal))
            {
                var value = line["license:".Length..].Trim().Trim('"', '\'');
                return value.Length > 0 ? value : null;
            }
        }

        return null;
    }

    private static bool LooksLikePath(string value) =>
        value.Contains('/', StringComparison.Ordinal) || value.Contains('\\', StringComparison.Ordinal) || Directory.Exists(value);
}
