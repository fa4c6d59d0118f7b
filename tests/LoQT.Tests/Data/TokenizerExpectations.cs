using System.Text.Json;
using LoQT.Tests.Support;

namespace LoQT.Tests.Data;

/// <summary>One line of a fixture's expected-tokenization file.</summary>
public sealed record TokenizerExpectation(int Line, string Text, int[] Ids, int[]? IdsWithSpecial, string? Decoded)
{
    // Shown by the test runner for each theory case.
    public override string ToString() => $"line {Line}: {JsonSerializer.Serialize(Text)}";

    public static TheoryData<TokenizerExpectation> Read(params string[] fixturePath) => Read(_ => true, fixturePath);

    public static TheoryData<TokenizerExpectation> Read(Func<TokenizerExpectation, bool> include, params string[] fixturePath)
    {
        var data = new TheoryData<TokenizerExpectation>();
        var lineNumber = 0;
        foreach (var line in File.ReadLines(TestPaths.Fixture(fixturePath)))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            var expectation = new TokenizerExpectation(
                lineNumber,
                root.GetProperty("text").GetString()!,
                Ints(root.GetProperty("ids")),
                root.TryGetProperty("ids_with_special", out var special) ? Ints(special) : null,
                root.TryGetProperty("decoded", out var decoded) ? decoded.GetString() : null);
            if (include(expectation))
            {
                data.Add(expectation);
            }
        }

        return data;
    }

    private static int[] Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];
}
