using System.Net;

namespace LoQT.Hub;

/// <summary>
/// A Hub operation failed in a way the caller can act on. Messages name the repository, revision and file and say
/// what to do; they never contain the access token.
/// </summary>
public class HubException : Exception
{
    /// <summary>Creates the exception.</summary>
    public HubException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }

    /// <summary>HTTP status the Hub answered with, when the failure came from a response.</summary>
    public HttpStatusCode? StatusCode { get; internal set; }
}

/// <summary>The repository is gated: its license must be accepted on the Hub, and a token of that account passed.</summary>
public sealed class GatedRepoException(string message) : HubException(message);

/// <summary>The repository does not exist, or is private and the token (if any) cannot see it.</summary>
public sealed class RepositoryNotFoundException(string message) : HubException(message);

/// <summary>The repository exists but has no such branch, tag or commit.</summary>
public sealed class RevisionNotFoundException(string message) : HubException(message);

/// <summary>The repository and revision exist but the file does not.</summary>
public sealed class HubFileNotFoundException(string message) : HubException(message);

/// <summary>The token is missing, invalid, or lacks the permission the operation needs.</summary>
public sealed class HubAuthenticationException(string message) : HubException(message);

/// <summary>Offline mode is on (<c>HF_HUB_OFFLINE</c>) and the cache does not hold what was asked for.</summary>
public sealed class HubOfflineException(string message) : HubException(message);

/// <summary>Downloaded bytes do not match the size or sha256 the Hub announced; nothing was cached.</summary>
public sealed class HubIntegrityException(string message) : HubException(message);

/// <summary>The Hub could not be reached or kept failing (5xx, 429, timeouts, dropped connections) after all retries.</summary>
public sealed class HubRequestFailedException(string message, Exception? innerException = null)
    : HubException(message, innerException)
{
    /// <summary>Attempts made, the first one included.</summary>
    public int Attempts { get; internal set; }
}
