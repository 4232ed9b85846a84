namespace PipelineDsl.Generator.Tests;

public class SmokeTests
{
    [Fact]
    public void Every_kind_generates_and_compiles_cleanly()
    {
        var result = GeneratorHarness.Run(TestPipelines.EveryKind);
        Assert.Empty(result.GeneratorDiagnostics.Concat(result.CompileDiagnostics).Select(d => d.ToString()));
    }
}
