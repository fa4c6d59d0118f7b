using System.Net;
using System.Text.Json.Nodes;

namespace LoQT.Hub;

/// <summary>
/// Turns an unsuccessful Hub response into the exception that says what to do. Transient statuses become
/// <see cref="TransientHubStatusException"/> (retried); 401/403/404 become <see cref="HubException"/> subclasses (not retried).
/// The Hub names the cause in <c>X-Error-Code</c> (GatedRepo, RepoNotFound, RevisionNotFound, EntryNotFound).
/// </summary>
internal static class HubFailureClassifier
{
    public static bool IsTransient(HttpStatusCode status) =>
        (int)status >= 500 || status is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout;

    public static Exception Classify(HttpResponseMessage response, HubRequestContext context, string endpoint, bool tokenSent, string? body)
    {
        var status = response.StatusCode;
        var code = (int)status;
        var where = $"{response.RequestMessage?.Method} {HubHttp.Describe(response.RequestMessage?.RequestUri)}";
        if (IsTransient(status))
        {
            return new TransientHubStatusException($"{context.Operation}: {where} answered {code} {response.ReasonPhrase}", status, RetryAfter(response));
        }

        var errorCode = Header(response, "X-Error-Code");
        var serverMessage = Header(response, "X-Error-Message") ?? ErrorFromBody(body);
        var repo = context.Repo?.Id ?? "(unknown repository)";
        var repoUrl = context.Repo is null ? endpoint : $"{endpoint}/{context.Repo.UrlPrefix}{context.Repo.Id}";
        var revision = context.Revision ?? "main";

        HubException? byCode = errorCode switch
        {
            "GatedRepo" => new GatedRepoException(tokenSent
                ? $"Repository '{repo}' is gated and the token you passed has no access to it yet ({code}). " +
                  $"Open {repoUrl} while logged in as the token's owner, accept the license (and wait for approval if the authors review requests), then retry."
                : $"Repository '{repo}' is gated ({code}). Open {repoUrl}, log in and accept its license, then pass a token of that account " +
                  "(--token, the HF_TOKEN environment variable, or the token file `huggingface-cli login` writes)."),
            "RepoNotFound" => RepoNotFound(repo, endpoint, code, tokenSent),
            "RevisionNotFound" => new RevisionNotFoundException(
                $"Revision '{revision}' not found in repository '{repo}' ({code}). Use an existing branch, tag or full commit sha (see {repoUrl}/tree/main)."),
            "EntryNotFound" => new HubFileNotFoundException(
                $"File '{context.Path}' not found in repository '{repo}' at revision '{revision}' ({code}). Check the file name against the repository's file list."),
            _ => null,
        };

        var error = byCode ?? status switch
        {
            HttpStatusCode.NotFound when context.Path is not null => new HubFileNotFoundException(
                $"File '{context.Path}' not found in repository '{repo}' at revision '{revision}' ({code})."),
            HttpStatusCode.NotFound when context.Repo is not null => RepoNotFound(repo, endpoint, code, tokenSent),
            HttpStatusCode.Unauthorized => tokenSent
                ? new HubAuthenticationException(
                    $"{context.Operation}: the Hub rejected the token (401{Detail(serverMessage)}). Check that it is valid and not expired, or create a new one in your Hub settings.")
                : context.Repo is not null
                    ? RepoNotFound(repo, endpoint, code, tokenSent)
                    : new HubAuthenticationException($"{context.Operation} needs a token (401{Detail(serverMessage)}): pass --token or set HF_TOKEN."),
            HttpStatusCode.Forbidden => new HubAuthenticationException(
                $"{context.Operation}: access to '{repo}' denied (403{Detail(serverMessage)}). " +
                (tokenSent ? "The token lacks the needed permission (a write token is needed to push)." : "Pass a token with access (--token or HF_TOKEN).")),
            _ => new HubException($"{context.Operation}: {where} answered {code} {response.ReasonPhrase}{Detail(serverMessage)}"),
        };

        return WithStatus(error, status);
    }

    public static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var retryAfter = response.Headers.RetryAfter;
        if (retryAfter?.Delta is { } delta)
        {
            return delta;
        }

        if (retryAfter?.Date is { } date)
        {
            var wait = date - DateTimeOffset.UtcNow;
            return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        }

        return null;
    }

    private static HubException RepoNotFound(string repo, string endpoint, int code, bool tokenSent) =>
        new RepositoryNotFoundException(
            $"Repository '{repo}' not found on {endpoint} ({code}). Check the id (namespace/name)" +
            (tokenSent
                ? "; if it is private, make sure the token's account can read it."
                : "; if it is private or gated, pass a token with access (--token or HF_TOKEN)."));

    private static HubException WithStatus(HubException error, HttpStatusCode status)
    {
        error.StatusCode = status;
        return error;
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static string? ErrorFromBody(string? body)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return null;
        }

        try
        {
            if (JsonNode.Parse(body) is JsonObject json && json["error"] is JsonValue message)
            {
                return message.ToString();
            }
        }
        catch (System.Text.Json.JsonException)
        {
            // Not JSON: fall through to a short excerpt.
        }

        var text = body.Trim();
        return text.Length <= 200 ? text : text[..200] + "…";
    }

    private static string Detail(string? serverMessage) => serverMessage is null ? string.Empty : ": " + serverMessage;
}
