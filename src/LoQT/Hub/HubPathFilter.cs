using System.Text;
using System.Text.RegularExpressions;

namespace LoQT.Hub;

/// <summary>
/// Include / exclude globs over repository paths with the semantics of huggingface_hub's
/// <c>allow_patterns</c> / <c>ignore_patterns</c>: Python <c>fnmatchcase</c> (case-sensitive; <c>*</c> also matches <c>/</c>;
/// <c>?</c>, <c>[abc]</c>, <c>[!abc]</c>), a pattern ending in <c>/</c> means everything under that folder, a path must match
/// at least one include pattern (when any are given) and no exclude pattern.
/// </summary>
public sealed class HubPathFilter
{
    private readonly Regex[]? include;
    private readonly Regex[] exclude;

    /// <summary>Creates a filter; null or empty <paramref name="include"/> means "everything".</summary>
    public HubPathFilter(IEnumerable<string>? include = null, IEnumerable<string>? exclude = null)
    {
        var includes = include?.ToArray();
        this.include = includes is { Length: > 0 } ? includes.Select(Compile).ToArray() : null;
        this.exclude = (exclude ?? []).Select(Compile).ToArray();
    }

    /// <summary>Whether <paramref name="path"/> (with <c>/</c> separators) passes the filter.</summary>
    public bool Matches(string path)
    {
        path = path.Replace('\\', '/');
        return (include is null || include.Any(p => p.IsMatch(path))) && !exclude.Any(p => p.IsMatch(path));
    }

    /// <summary>Whether <paramref name="path"/> matches one fnmatch-style <paramref name="pattern"/>.</summary>
    public static bool IsMatch(string path, string pattern) => Compile(pattern).IsMatch(path.Replace('\\', '/'));

    private static Regex Compile(string pattern)
    {
        pattern = pattern.Replace('\\', '/');
        if (pattern.EndsWith('/'))
        {
            pattern += "*";
        }

        return new Regex(Translate(pattern), RegexOptions.CultureInvariant | RegexOptions.Singleline);
    }

    // Follows the rules of Python's fnmatch.translate.
    private static string Translate(string pattern)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            switch (c)
            {
                case '*':
                    regex.Append(".*");
                    while (i + 1 < pattern.Length && pattern[i + 1] == '*')
                    {
                        i++;
                    }

                    break;
                case '?':
                    regex.Append('.');
                    break;
                case '[':
                    var end = i + 1;
                    if (end < pattern.Length && pattern[end] == '!')
                    {
                        end++;
                    }

                    if (end < pattern.Length && pattern[end] == ']')
                    {
                        end++;
                    }

                    while (end < pattern.Length && pattern[end] != ']')
                    {
                        end++;
                    }

                    if (end >= pattern.Length)
                    {
                        regex.Append(@"\[");
                        break;
                    }

                    var set = pattern[(i + 1)..end];
                    i = end;
                    if (set.Length == 0)
                    {
                        regex.Append("(?!)");
                        break;
                    }

                    var negated = set[0] == '!';
                    if (negated)
                    {
                        set = set[1..];
                    }

                    regex.Append('[');
                    if (negated)
                    {
                        regex.Append('^');
                    }

                    foreach (var member in set)
                    {
                        // Inside a class only '-' keeps its meaning; escape everything else that regex treats specially.
                        regex.Append(member is '\\' or '^' or '[' or ']' ? "\\" + member : member.ToString());
                    }

                    regex.Append(']');
                    break;
                default:
                    regex.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }

        return regex.Append('$').ToString();
    }
}
