using System.Collections;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace PipelineDsl.Generator.Tests;

/// <summary>
/// Every named step of the incremental pipeline, as a real run produces it: what each step caches, which edits
/// re-run which steps, and what the models a run carries are made of (walked object by object, as
/// System.Text.Json's generator tests do).
/// </summary>
public class PipelineStepTests
{
    /// <summary>A type with an operator attribute outside any pipeline (PDSL diagnostic), so that the orphan step has output too.</summary>
    private const string Orphan = """
        using PipelineDsl;

        namespace Demo;

        public static class NotAPipeline
        {
            [Map("stray", From = "clicks")]
            public static string Stray(string s) => s;
        }
        """;

    private static readonly string[] AllSteps = typeof(PipelineGenerator).Assembly.GetType("PipelineDsl.Generator.TrackingNames")!
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (string)f.GetValue(null)!).ToArray();

    private static readonly string LockText = GeneratorHarness.LockFile(Manifests.Of((TestPipelines.Records, "Records.cs"), (TestPipelines.ClicksPerUser, "ClicksPerUser.cs")));

    private static Compilation NewCompilation() =>
        GeneratorHarness.Compilation((TestPipelines.Records, "Records.cs"), (TestPipelines.ClicksPerUser, "ClicksPerUser.cs"), (Orphan, "Orphan.cs"));

    private static GeneratorDriver FirstRun(Compilation compilation, AdditionalText? lockFile = null) =>
        GeneratorHarness.DriverWith(lockFile ?? GeneratorHarness.Text("/repo/pipelines.lock.json", LockText)).RunGenerators(compilation);

    private static IReadOnlyDictionary<string, IncrementalStepRunReason[]> Reasons(GeneratorDriver driver)
    {
        var steps = driver.GetRunResult().Results.Single().TrackedSteps;
        return AllSteps.Where(steps.ContainsKey).ToDictionary(name => name, name => steps[name].SelectMany(s => s.Outputs).Select(o => o.Reason).ToArray());
    }

    private static Compilation ReplaceTree(Compilation compilation, string path, Func<string, string> change)
    {
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == path);
        string text = change(old.ToString());
        Assert.NotEqual(old.ToString(), text);
        return compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText(text, GeneratorHarness.ParseOptions, path));
    }

    private static void AssertNotModified(IReadOnlyDictionary<string, IncrementalStepRunReason[]> reasons, params string[] steps)
    {
        foreach (var step in steps)
            Assert.All(reasons[step], r => Assert.True(r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{step} was {r}"));
    }

    [Fact]
    public void Every_named_step_runs_and_is_cached_when_nothing_changed()
    {
        var compilation = NewCompilation();
        var driver = FirstRun(compilation).RunGenerators(compilation);
        var reasons = Reasons(driver);
        Assert.Equal(AllSteps.Order(), reasons.Keys.Order());
        foreach (var (step, outputs) in reasons)
        {
            Assert.True(outputs.Length > 0, $"{step} produced nothing in this run, so it is not covered");
            AssertNotModified(reasons, step);
        }
    }

    [Fact]
    public void Moving_a_pipeline_within_its_file_moves_its_diagnostics_but_re_emits_no_source()
    {
        var compilation = NewCompilation();
        var driver = FirstRun(compilation);
        var before = driver.GetRunResult().GeneratedTrees.Select(t => t.ToString()).ToList();

        driver = driver.RunGenerators(ReplaceTree(compilation, "ClicksPerUser.cs", s => "// a comment that moves every line down\n\n" + s));
        AssertNotModified(Reasons(driver), TrackingNames.PipelineSpecs, TrackingNames.ContractSpecs);
        Assert.Equal(before, driver.GetRunResult().GeneratedTrees.Select(t => t.ToString()).ToList());
    }

    [Fact]
    public void Moving_the_orphan_operator_moves_only_its_diagnostic()
    {
        var compilation = NewCompilation();
        var driver = FirstRun(compilation);
        int line = driver.GetRunResult().Diagnostics.Single(d => d.Location.GetLineSpan().Path == "Orphan.cs").Location.GetLineSpan().StartLinePosition.Line;
        driver = driver.RunGenerators(ReplaceTree(compilation, "Orphan.cs", s => "\n\n" + s));
        var reasons = Reasons(driver);
        Assert.Contains(IncrementalStepRunReason.Modified, reasons[TrackingNames.OrphanOperators]);
        AssertNotModified(reasons, TrackingNames.PipelineParse, TrackingNames.PipelineSpecs, TrackingNames.ContractSpecs, TrackingNames.LockFile);
        var moved = driver.GetRunResult().Diagnostics.Single(d => d.Location.GetLineSpan().Path == "Orphan.cs");
        Assert.Equal(line + 2, moved.Location.GetLineSpan().StartLinePosition.Line);
    }

    [Fact]
    public void Editing_the_lock_file_re_runs_the_lock_check_only()
    {
        var compilation = NewCompilation();
        var lockFile = GeneratorHarness.Text("/repo/pipelines.lock.json", LockText);
        var driver = FirstRun(compilation, lockFile);
        Assert.Contains("\"version\": 2", LockText);
        driver = driver.ReplaceAdditionalText(lockFile, GeneratorHarness.Text("/repo/pipelines.lock.json", LockText.Replace("\"version\": 2", "\"version\": 3")));
        driver = driver.RunGenerators(compilation);
        var reasons = Reasons(driver);
        Assert.Contains(IncrementalStepRunReason.Modified, reasons[TrackingNames.LockFile]);
        AssertNotModified(reasons, TrackingNames.PipelineParse, TrackingNames.PipelineSpecs, TrackingNames.ContractParse, TrackingNames.ContractSpecs, TrackingNames.PipelineLocations);
        // ...and the check it re-ran now reports the build's lower version.
        Assert.Contains(driver.GetRunResult().Diagnostics, d => d.Id.StartsWith("PDSL2", StringComparison.Ordinal));
    }

    [Fact]
    public void The_models_of_a_real_run_hold_only_plain_values()
    {
        var driver = FirstRun(NewCompilation());
        var walked = new HashSet<object>(ReferenceEqualityComparer.Instance);
        int objects = 0;
        foreach (var (step, runs) in driver.GetRunResult().Results.Single().TrackedSteps)
        {
            if (!AllSteps.Contains(step)) continue;
            foreach (var output in runs.SelectMany(r => r.Outputs)) Walk(output.Value, step, walked, ref objects);
        }

        Assert.True(objects > 50, $"only {objects} objects were walked");
    }

    private static readonly Type[] Forbidden = { typeof(ISymbol), typeof(SyntaxNode), typeof(SyntaxTree), typeof(Location), typeof(Compilation), typeof(SemanticModel), typeof(AttributeData), typeof(Delegate) };

    private static void Walk(object? value, string path, HashSet<object> walked, ref int objects)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum || value is decimal) return;
        var type = value.GetType();
        foreach (var forbidden in Forbidden)
            Assert.False(forbidden.IsInstanceOfType(value), $"{path} holds a {type.Name}: a model must hold plain values only");
        if (!type.IsValueType && !walked.Add(value)) return;
        objects++;
        if (value is IEnumerable items and not string)
        {
            Assert.False(type.IsArray && !path.Contains("EquatableArray", StringComparison.Ordinal), $"{path} is a raw array, which has reference equality: use EquatableArray<T>");
            int i = 0;
            foreach (var item in items) Walk(item, $"{path}[{i++}]", walked, ref objects);
            if (type.Name.StartsWith("EquatableArray", StringComparison.Ordinal) || type.IsArray) return;
        }

        Assert.True(type.Namespace?.StartsWith("PipelineDsl.Generator", StringComparison.Ordinal) == true || type.IsGenericType && type.GetGenericTypeDefinition().FullName!.StartsWith("System.ValueTuple", StringComparison.Ordinal)
            || type.FullName!.StartsWith("System.Collections.Immutable.ImmutableArray", StringComparison.Ordinal)
            || type.IsValueType && type.Namespace == "Microsoft.CodeAnalysis.Text", // TextSpan, LinePositionSpan: plain values
            $"{path} holds a {type.FullName}, which is not a model type");
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            string next = type.Name.StartsWith("EquatableArray", StringComparison.Ordinal) ? $"{path}.EquatableArray.{field.Name}" : $"{path}.{field.Name}";
            Walk(field.GetValue(value), next, walked, ref objects);
        }
    }

    [Fact]
    public void Two_runs_over_separately_parsed_sources_produce_equal_models()
    {
        // Equal models across compilations are what lets a step be Cached or Unchanged after an unrelated edit.
        var first = FirstRun(NewCompilation()).GetRunResult().Results.Single().TrackedSteps;
        var second = FirstRun(NewCompilation()).GetRunResult().Results.Single().TrackedSteps;
        foreach (var step in AllSteps)
        {
            var a = first[step].SelectMany(r => r.Outputs).Select(o => o.Value).ToList();
            var b = second[step].SelectMany(r => r.Outputs).Select(o => o.Value).ToList();
            Assert.Equal(a.Count, b.Count);
            for (int i = 0; i < a.Count; i++)
            {
                Assert.True(Equals(a[i], b[i]), $"{step}[{i}]: the two runs' models are not equal ({a[i]?.GetType().Name})");
                if (a[i] is not null) Assert.Equal(a[i]!.GetHashCode(), b[i]!.GetHashCode());
            }
        }
    }
}
