using System.Text.Json;

namespace LoQT.Hub;

/// <summary>
/// The body of <c>POST /api/{type}s/{id}/commit/{revision}</c>: newline-delimited JSON, a <c>header</c> line (summary,
/// description), then one <c>file</c> line per regular file (base64 content) and one <c>lfsFile</c> line per LFS file
/// (sha256 oid and size).
/// </summary>
internal static class CommitPayload
{
    public static async Task<byte[]> BuildAsync(
        string summary,
        string description,
        IReadOnlyList<LocalUploadFile> files,
        IReadOnlySet<string> lfsPaths,
        CancellationToken cancellationToken)
    {
        using var body = new MemoryStream();
        WriteLine(body, writer =>
        {
            writer.WriteString("key", "header");
            writer.WriteStartObject("value");
            writer.WriteString("summary", summary);
            writer.WriteString("description", description);
            writer.WriteEndObject();
        });

        foreach (var file in files)
        {
            if (lfsPaths.Contains(file.PathInRepo))
            {
                WriteLine(body, writer =>
                {
                    writer.WriteString("key", "lfsFile");
                    writer.WriteStartObject("value");
                    writer.WriteString("path", file.PathInRepo);
                    writer.WriteString("algo", "sha256");
                    writer.WriteString("oid", file.Sha256);
                    writer.WriteNumber("size", file.Size);
                    writer.WriteEndObject();
                });
            }
            else
            {
                var content = Convert.ToBase64String(await File.ReadAllBytesAsync(file.FullPath, cancellationToken).ConfigureAwait(false));
                WriteLine(body, writer =>
                {
                    writer.WriteString("key", "file");
                    writer.WriteStartObject("value");
                    writer.WriteString("content", content);
                    writer.WriteString("path", file.PathInRepo);
                    writer.WriteString("encoding", "base64");
                    writer.WriteEndObject();
                });
            }
        }

        return body.ToArray();
    }

    private static void WriteLine(Stream body, Action<Utf8JsonWriter> writeMembers)
    {
        using (var writer = new Utf8JsonWriter(body))
        {
            writer.WriteStartObject();
            writeMembers(writer);
            writer.WriteEndObject();
        }

        body.Write("\n"u8);
    }
}
