using Microsoft.CodeAnalysis;

namespace PipelineDsl.Generator.Tests;

internal static class DiagnosticAssert
{
    /// <summary>
    /// Runs the generator on <paramref name="markedSource"/> (plus the shared records) and asserts that
    /// it reports <paramref name="id"/> exactly once, with <paramref name="message"/>, at the span marked
    /// <c>[|...|]</c>.
    /// </summary>
    public static Diagnostic Single(string markedSource, string id, string message, DiagnosticSeverity severity = DiagnosticSeverity.Error)
    {
        int start = markedSource.IndexOf("[|", StringComparison.Ordinal);
        int end = markedSource.IndexOf("|]", StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, "the test source must mark the expected location with [|...|]");
        string source = markedSource.Remove(end, 2).Remove(start, 2);
        var expectedSpan = new Microsoft.CodeAnalysis.Text.TextSpan(start, end - start - 2);

        var result = GeneratorHarness.Run(GeneratorHarness.Compilation((TestPipelines.Records, "Records.cs"), (source, "Test.cs")));
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Id == "PDSL000");
        var matching = result.GeneratorDiagnostics.Where(d => d.Id == id).ToList();
        Assert.True(matching.Count == 1, $"expected one {id}, got: {string.Join("\n", result.GeneratorDiagnostics)}");
        var diagnostic = matching[0];
        Assert.Equal(message, diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(severity, diagnostic.Severity);
        Assert.Equal("Test.cs", diagnostic.Location.GetLineSpan().Path);
        Assert.Equal(expectedSpan, diagnostic.Location.SourceSpan);
        return diagnostic;
    }

    public const string Header = """
        using System.Collections.Generic;
        using PipelineDsl;
        using Demo;

        namespace Tests;

        """;

    /// <summary>A valid pipeline "p" with a source "clicks" and a sink "out", plus <paramref name="members"/>.</summary>
    public static string InPipeline(string members) => Header + """
        [Pipeline("p")]
        public static partial class P
        {
            [Source("clicks")]
            public static partial Source<Click> Clicks();

        """ + members + """

        }
        """;
}
