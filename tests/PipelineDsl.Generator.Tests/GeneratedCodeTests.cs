namespace PipelineDsl.Generator.Tests;

/// <summary>What the generated code must not do to a user's build.</summary>
public class GeneratedCodeTests
{
    [Fact]
    public void Obsolete_stage_methods_and_record_types_raise_no_warning_in_generated_code()
    {
        // With warnings as errors, an [Obsolete] stage (kept for a while during a migration) must not break the build
        // through the generated wiring that calls it.
        var result = GeneratorHarness.Run("""
            using System;
            using PipelineDsl;

            namespace Demo.Obsolete;

            [Obsolete("use Click2")]
            public sealed record Click(string User);

            [Pipeline("obsolete-stages")]
            public static partial class Stages
            {
            #pragma warning disable CS0618 // the user's own uses are theirs to silence
                [Source("in")]
                public static partial Source<Click> In();

                [Obsolete("kept for one release")]
                [Filter("kept", From = "in")]
                public static bool Keep(Click c) => c.User.Length > 0;

                [Obsolete]
                [Map("user", From = "kept")]
                public static string User(Click c) => c.User;
            #pragma warning restore CS0618

                [Sink("out", From = "user")]
                public static partial Sink<string> Out();
            }
            """);
        var fromGenerated = result.CompileDiagnostics.Where(d => d.Id is "CS0612" or "CS0618" && d.Location.SourceTree?.FilePath.EndsWith(".g.cs", StringComparison.Ordinal) == true).ToList();
        Assert.Empty(fromGenerated.Select(d => d.ToString()));
        Assert.Empty(result.Errors.Select(d => d.ToString()));
        Assert.Contains(result.Sources.Values, s => s.Contains("#pragma warning disable CS0612, CS0618", StringComparison.Ordinal));
    }
}
