using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace PipelineDsl.Generator.Tests;

/// <summary>The generator does no work again for changes that cannot affect its output.</summary>
public class IncrementalTests
{
    private static readonly string[] TrackedSteps =
    {
        TrackingNames.PipelineParse, TrackingNames.PipelineSpecs, TrackingNames.ContractParse, TrackingNames.ContractSpecs,
    };

    private static (GeneratorDriver Driver, Compilation Compilation) FirstRun()
    {
        var compilation = GeneratorHarness.Compilation((TestPipelines.Records, "Records.cs"), (TestPipelines.ClicksPerUser, "ClicksPerUser.cs"));
        var driver = GeneratorHarness.Driver().RunGenerators(compilation);
        return (driver, compilation);
    }

    private static Dictionary<string, IncrementalStepRunReason[]> Reasons(GeneratorDriver driver)
    {
        var steps = driver.GetRunResult().Results.Single().TrackedSteps;
        return TrackedSteps.ToDictionary(
            name => name,
            name => steps[name].SelectMany(s => s.Outputs).Select(o => o.Reason).ToArray());
    }

    private static void AssertAllCachedOrUnchanged(GeneratorDriver driver)
    {
        foreach (var (step, reasons) in Reasons(driver))
        {
            Assert.NotEmpty(reasons);
            Assert.All(reasons, r => Assert.True(r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{step} was {r}"));
        }
    }

    private static Compilation ReplaceTree(Compilation compilation, string path, Func<string, string> change)
    {
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == path);
        var updated = CSharpSyntaxTree.ParseText(change(old.ToString()), GeneratorHarness.ParseOptions, path);
        return compilation.ReplaceSyntaxTree(old, updated);
    }

    [Fact]
    public void Running_twice_on_the_same_compilation_is_all_cached()
    {
        var (driver, compilation) = FirstRun();
        driver = driver.RunGenerators(compilation);
        AssertAllCachedOrUnchanged(driver);
    }

    [Fact]
    public void Adding_an_unrelated_type_changes_no_model()
    {
        var (driver, compilation) = FirstRun();
        compilation = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("namespace Demo; public sealed class Unrelated { public int X; }", GeneratorHarness.ParseOptions, "Unrelated.cs"));
        driver = driver.RunGenerators(compilation);
        AssertAllCachedOrUnchanged(driver);
    }

    [Fact]
    public void Editing_a_method_body_changes_no_model()
    {
        var (driver, compilation) = FirstRun();
        compilation = ReplaceTree(compilation, "ClicksPerUser.cs", s => s.Replace("=> !e.IsBot;", "=> !e.IsBot && e.Url.Length < 4096;"));
        driver = driver.RunGenerators(compilation);
        AssertAllCachedOrUnchanged(driver);
    }

    [Fact]
    public void Changing_an_attribute_modifies_the_pipeline_model()
    {
        var (driver, compilation) = FirstRun();
        compilation = ReplaceTree(compilation, "ClicksPerUser.cs", s => s.Replace("Version = 2", "Version = 3"));
        driver = driver.RunGenerators(compilation);
        var reasons = Reasons(driver);
        Assert.Contains(IncrementalStepRunReason.Modified, reasons[TrackingNames.PipelineParse]);
        Assert.Contains(IncrementalStepRunReason.Modified, reasons[TrackingNames.PipelineSpecs]);
        Assert.DoesNotContain(IncrementalStepRunReason.Modified, reasons[TrackingNames.ContractSpecs]);
    }

    [Fact]
    public void Changing_a_state_contract_modifies_its_model()
    {
        var (driver, compilation) = FirstRun();
        compilation = ReplaceTree(compilation, "Records.cs", s => s.Replace("[property: Field(1)]", "[property: Field(7)]"));
        driver = driver.RunGenerators(compilation);
        var reasons = Reasons(driver);
        Assert.Contains(IncrementalStepRunReason.Modified, reasons[TrackingNames.ContractSpecs]);
        // The pipeline's manifest records the state schema, so its model changes too.
        Assert.Contains(IncrementalStepRunReason.Modified, reasons[TrackingNames.PipelineSpecs]);
    }
}
