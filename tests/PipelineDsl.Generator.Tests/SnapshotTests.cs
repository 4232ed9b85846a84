namespace PipelineDsl.Generator.Tests;

/// <summary>The generated source of representative pipelines, compared exactly with checked-in files.</summary>
public class SnapshotTests
{
    [Fact]
    public void Clicks_per_user_pipeline()
    {
        var result = GeneratorHarness.Run(TestPipelines.Records, TestPipelines.ClicksPerUser);
        Assert.Empty(result.Errors);
        Snapshot.Verify(result.Source("Demo.ClicksPerUser.Pipeline.g.cs"), "ClicksPerUser.Pipeline");
        Snapshot.Verify(result.Source("Demo.UserState.StateContract.g.cs"), "ClicksPerUser.UserState");
    }

    [Fact]
    public void Pipeline_using_every_operator_kind()
    {
        var result = GeneratorHarness.Run(TestPipelines.EveryKind);
        Assert.Empty(result.Errors);
        Snapshot.Verify(result.Source("Demo.Everything.Everything.Pipeline.g.cs"), "Everything.Pipeline");
        Snapshot.Verify(result.Source("Demo.Everything.WordState.StateContract.g.cs"), "Everything.WordState");
        Snapshot.Verify(result.Source("Demo.Everything.Nested.StateContract.g.cs"), "Everything.Nested");
        Snapshot.Verify(result.Source("Demo.Everything.Summary.StateContract.g.cs"), "Everything.Summary");
    }

    [Fact]
    public void Nested_pipeline_class_in_the_global_namespace()
    {
        const string source = """
            using PipelineDsl;

            public static partial class Outer
            {
                public readonly record struct Reading(int Sensor, long Value);

                [Pipeline("nested")]
                internal static partial class Inner
                {
                    [Source("numbers")]
                    private static partial Source<int> Numbers();

                    [Map("doubled", From = "numbers")]
                    private static Reading Double(int n) => new(n % 4, n * 2L);

                    [UpdateState("sum", From = "doubled", Key = nameof(Reading.Sensor))]
                    private static long Sum(int sensor, Reading r, KeyedState<long> state)
                    {
                        state.Update(state.Value + r.Value);
                        return state.Value;
                    }

                    [Sink("out", From = "sum")]
                    private static partial Sink<long> Out();
                }
            }
            """;
        var result = GeneratorHarness.Run(source);
        Assert.Empty(result.Errors);
        Snapshot.Verify(result.Source("Outer.Inner.Pipeline.g.cs"), "Nested.Pipeline");
    }

    [Fact]
    public void Generation_is_byte_identical_across_runs()
    {
        var first = GeneratorHarness.Run(TestPipelines.EveryKind).Sources;
        var second = GeneratorHarness.Run(TestPipelines.EveryKind).Sources;
        Assert.Equal(first.OrderBy(p => p.Key), second.OrderBy(p => p.Key));
        Assert.All(first.Values, text => Assert.DoesNotContain("\r", text));
    }
}
