using System.Text.Json;
using System.Text.RegularExpressions;

namespace PipelineDsl.Generator.Tests;

/// <summary>Reads the manifest out of generated pipeline source, as the compiled constant would hold it.</summary>
internal static class Manifests
{
    public static string FromGenerated(string generatedSource)
    {
        var match = Regex.Match(generatedSource, "public const string ManifestJson = @\"(?<json>(?:[^\"]|\"\")*)\";");
        Assert.True(match.Success, "generated source has no ManifestJson");
        return match.Groups["json"].Value.Replace("\"\"", "\"");
    }

    public static string Of(params (string Source, string Path)[] sources)
    {
        var result = GeneratorHarness.Run(GeneratorHarness.Compilation(sources));
        Assert.Empty(result.Errors.Select(e => e.ToString()));
        return FromGenerated(result.Sources.Single(s => s.Key.EndsWith(".Pipeline.g.cs", StringComparison.Ordinal)).Value);
    }

    /// <summary>Each operator's entry exactly as it stands in the manifest text.</summary>
    public static IReadOnlyDictionary<string, string> Entries(string manifest)
    {
        using var doc = JsonDocument.Parse(manifest);
        return doc.RootElement.GetProperty("operators").EnumerateArray()
            .ToDictionary(e => e.GetProperty("id").GetString()!, e => e.GetRawText());
    }

    public static string Fingerprint(string manifest, string operatorId)
    {
        using var doc = JsonDocument.Parse(manifest);
        return doc.RootElement.GetProperty("operators").EnumerateArray()
            .Single(e => e.GetProperty("id").GetString() == operatorId)
            .GetProperty("stateSchema").GetProperty("fingerprint").GetString()!;
    }
}
