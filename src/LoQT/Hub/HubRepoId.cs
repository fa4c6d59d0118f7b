using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace LoQT.Hub;

/// <summary>A validated Hub repository id (<c>name</c> or <c>namespace/name</c>) with its type.</summary>
public sealed partial record HubRepoId
{
    private HubRepoId(string id, HubRepoType type)
    {
        Id = id;
        Type = type;
    }

    /// <summary>The id as the Hub spells it, e.g. <c>meta-llama/Llama-3.2-1B</c>.</summary>
    public string Id { get; }

    /// <summary>Model, dataset or Space.</summary>
    public HubRepoType Type { get; }

    /// <summary>Folder name inside the cache, as huggingface_hub names it: <c>models--org--name</c>.</summary>
    public string CacheFolderName => TypeSegment + "--" + Id.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>Plural type used by the REST API (<c>/api/models/…</c>).</summary>
    internal string TypeSegment => Type switch
    {
        HubRepoType.Dataset => "datasets",
        HubRepoType.Space => "spaces",
        _ => "models",
    };

    /// <summary>Prefix of the repository in file URLs: empty for models, <c>datasets/</c> or <c>spaces/</c> otherwise.</summary>
    internal string UrlPrefix => Type switch
    {
        HubRepoType.Dataset => "datasets/",
        HubRepoType.Space => "spaces/",
        _ => string.Empty,
    };

    /// <summary>Parses and validates a repository id.</summary>
    /// <exception cref="ArgumentException">The id does not have the Hub's form.</exception>
    public static HubRepoId Parse(string id, HubRepoType type = HubRepoType.Model)
    {
        if (TryParse(id, out var repo, type))
        {
            return repo;
        }

        throw new ArgumentException(
            $"'{id}' is not a valid Hub repository id: expected 'name' or 'namespace/name' made of letters, digits, '-', '_' and '.' " +
            "(no '--' or '..', not starting or ending with '-' or '.', at most 96 characters for the name).",
            nameof(id));
    }

    /// <summary>Parses a repository id; false when it does not have the Hub's form.</summary>
    public static bool TryParse(string? id, [NotNullWhen(true)] out HubRepoId? repo, HubRepoType type = HubRepoType.Model)
    {
        repo = null;
        if (string.IsNullOrEmpty(id) || !RepoIdShape().IsMatch(id) ||
            id.Contains("--", StringComparison.Ordinal) || id.Contains("..", StringComparison.Ordinal) ||
            id.EndsWith(".git", StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var part in id.Split('/'))
        {
            if (part[0] is '-' or '.' || part[^1] is '-' or '.')
            {
                return false;
            }
        }

        repo = new HubRepoId(id, type);
        return true;
    }

    /// <summary>The id, e.g. <c>org/name</c>.</summary>
    public override string ToString() => Id;

    [GeneratedRegex(@"^([A-Za-z0-9_.\-]{1,96}/)?[A-Za-z0-9_.\-]{1,96}$")]
    private static partial Regex RepoIdShape();
}
