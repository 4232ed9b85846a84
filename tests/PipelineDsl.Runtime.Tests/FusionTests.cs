using PipelineDsl.Execution;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// Chains of stateless operators are fused (each record pushed through all of them, only the last one's output kept).
/// Fusion must not change a single record, nor starve an operator's second consumer, nor hide which operator failed.
/// </summary>
public class FusionTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static PipelineRunnerOptions Options(TempDir dir, int parallelism, long perPartition) => new()
    {
        CheckpointDirectory = dir.Sub("checkpoint"),
        Trigger = TriggerMode.AvailableNow,
        MaxRecordsPerPartition = perPartition,
        Parallelism = parallelism,
        CheckpointInterval = 2,
    };

    [Fact]
    public void Chains_stop_at_an_operator_with_two_consumers()
    {
        var sources = new Dictionary<string, object> { ["events"] = new MemorySource<Event>() };
        var sinks = new Dictionary<string, object> { ["scaled-out"] = new CollectingSink<Event>(), ["out"] = new CollectingSink<Total>() };
        var factory = new ExecutorFactory(sources, sinks, parallelism: 1);
        var executors = Chained.Definition.Operators.Select(factory.Build).ToArray();

        var chains = OperatorFusion.Apply(executors);

        var ids = chains.Select(c => string.Join(" -> ", c.Select(n => n.Id))).ToList();
        Assert.Equal(new[] { "kept -> scaled", "expanded -> labelled" }, ids);
        var fusedAway = executors.OfType<IStatelessStage>().Where(s => s.FusedIntoNext).Select(s => s.Node.Id).OrderBy(i => i, StringComparer.Ordinal);
        Assert.Equal(new[] { "expanded", "kept" }, fusedAway);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public async Task Fused_chains_give_exactly_the_records_of_a_plain_computation(int parallelism)
    {
        var random = TestRandom.Create(11, log);
        // Enough records per batch for the parallel path (8,192 and up), and a short last batch for the sequential one.
        const int perBatch = 20_000;
        var events = Enumerable.Range(0, 2 * perBatch + 1_000).Select(_ => new Event("u" + random.Next(50), random.Next(-1_000, 1_000))).ToList();
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        foreach (var e in events) source.Add(0, e);
        var scaledOut = new CollectingSink<Event>();
        var output = new CollectingSink<Total>();

        var summary = await new PipelineRunner(Chained.Definition, Options(dir, parallelism, perBatch))
            .BindSource(Chained.Events(), source)
            .BindSink(Chained.ScaledOut(), scaledOut)
            .BindSink(Chained.Out(), output)
            .RunAsync();

        Assert.Equal(3, summary.BatchesRun);
        for (int b = 0; b < 3; b++)
        {
            var batch = events.Skip(b * perBatch).Take(perBatch).ToList();
            var scaled = batch.Where(e => e.Value % 7 != 3).Select(e => e with { Value = e.Value * 3 + 1 }).ToList();
            var labelled = new List<Total>();
            foreach (var e in scaled)
            {
                for (long i = 0; i < e.Value % 3; i++) labelled.Add(new Total(e.User, e.Value + i, (e.Value + i) % 5));
            }

            Assert.Equal(scaled, scaledOut.Batches[b]);
            Assert.Equal(labelled, output.Batches[b]);
            Assert.NotEmpty(labelled);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_failing_function_in_a_fused_chain_is_named_by_its_own_operator(int parallelism)
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        for (int i = 0; i < 10_000; i++) source.Add(0, new Event(i == 9_000 ? "poison" : "u" + i % 10, i));
        var output = new CollectingSink<Total>();

        var e = await Assert.ThrowsAsync<PipelineExecutionException>(() => new PipelineRunner(Chained.Definition, Options(dir, parallelism, 20_000))
            .BindSource(Chained.Events(), source)
            .BindSink(Chained.ScaledOut(), new CollectingSink<Event>())
            .BindSink(Chained.Out(), output)
            .RunAsync());

        // "kept" is fused into "scaled", which runs the chain: the error must still name "kept", with the user's exception.
        Assert.StartsWith("Operator 'kept' failed in batch 0: poison record", e.Message);
        Assert.IsType<InvalidOperationException>(e.InnerException);
        Assert.Empty(output.All);
    }
}
