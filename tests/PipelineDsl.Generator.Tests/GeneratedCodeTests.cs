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

    [Fact]
    public void Every_generated_member_and_type_is_marked_generated_code_and_the_users_partial_class_is_not()
    {
        // Coverage tools and analyzers skip members marked [GeneratedCode]; the user's own partial class (which the
        // generated file continues) must stay theirs.
        var result = GeneratorHarness.Run(TestPipelines.Records, TestPipelines.EveryKind, TestPipelines.ClicksPerUser);
        Assert.Empty(result.Errors.Select(d => d.ToString()));
        int checkedMembers = 0;
        foreach (var (name, source) in result.Sources)
        {
            var root = Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText(source).GetRoot();
            foreach (var member in root.DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.MemberDeclarationSyntax>())
            {
                bool marked = member.AttributeLists.SelectMany(l => l.Attributes).Any(a => a.Name.ToString().EndsWith("GeneratedCodeAttribute", StringComparison.Ordinal));
                switch (member)
                {
                    case Microsoft.CodeAnalysis.CSharp.Syntax.BaseNamespaceDeclarationSyntax:
                        break;
                    case Microsoft.CodeAnalysis.CSharp.Syntax.TypeDeclarationSyntax type when type.Modifiers.Any(m => m.Text == "partial"):
                        Assert.False(marked, $"{name}: the user's partial type '{type.Identifier}' is marked [GeneratedCode]");
                        break;
                    default:
                        // Members of a generated nested type are covered by the type's attribute.
                        if (member.Parent is Microsoft.CodeAnalysis.CSharp.Syntax.TypeDeclarationSyntax parent && !parent.Modifiers.Any(m => m.Text == "partial")) break;
                        Assert.True(marked, $"{name}: a generated member is not marked [GeneratedCode]:\n{member.ToString().Split('\n')[0]}");
                        checkedMembers++;
                        break;
                }
            }
        }

        Assert.True(checkedMembers > 20, $"only {checkedMembers} generated members were checked");
    }
}
