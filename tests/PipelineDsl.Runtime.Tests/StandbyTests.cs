using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>Running totals per user without idle expiry: no batch runs without input, so batch ids do not depend on timing.</summary>
[Pipeline("standby-totals")]
public static partial class StandbyTotals
{
    [Source("events")]
    public static partial Source<Event> Events();

    [UpdateState("totals", From = "events", Key = nameof(Event.User))]
    public static Total? Update(string user, Event e, KeyedState<Running> state)
    {
        var next = new Running(state.Value.Sum + e.Value, state.Value.Count + 1);
        state.Update(next);
        return new Total(user, next.Sum, next.Count);
    }

    [Sink("out", From = "totals")]
    public static partial Sink<Total?> Out();
}

/// <summary>
/// A hot standby (<see cref="PipelineRunnerOptions.Standby"/>) on the same checkpoint as an active run: it follows
/// the active's commits without writing, takes over when the active stops, continues from the state it already
/// rebuilt (no snapshot restored, nothing replayed), and the output is exactly that of one uninterrupted run.
/// </summary>
public sealed class StandbyTests
{
    private static List<Event> Events(int from, int count) =>
        Enumerable.Range(from, count).Select(i => new Event("u" + (i % 7), i % 13 + 1)).ToList();

    private static PipelineRunnerOptions Options(string checkpoint, bool standby, TriggerMode trigger = TriggerMode.Continuous) => new()
    {
        CheckpointDirectory = checkpoint,
        Trigger = trigger,
        BatchInterval = TimeSpan.FromMilliseconds(10),
        MaxRecordsPerPartition = 10,
        CheckpointInterval = 3,
        Standby = standby,
        StandbyPollInterval = TimeSpan.FromMilliseconds(10),
    };

    private static PipelineRunner Runner(PipelineRunnerOptions options, MemorySource<Event> source, CollectingSink<Total?> sink) =>
        new PipelineRunner(StandbyTotals.Definition, options).BindSource(StandbyTotals.Events(), source).BindSink(StandbyTotals.Out(), sink);

    [Fact]
    public async Task A_standby_follows_the_active_takes_over_when_it_stops_and_continues_exactly()
    {
        using var dir = new TempDir();
        string checkpoint = dir.Sub("checkpoint");
        var source = new MemorySource<Event>();
        var sink = new CollectingSink<Total?>(); // one output, as a shared object store would be
        source.Add(0, Events(0, 60));

        using var stopActive = new CancellationTokenSource();
        var active = Task.Run(() => Runner(Options(checkpoint, standby: false), source, sink).RunAsync(stopActive.Token));
        Assert.True(Eventually.WaitUntil(() => sink.Batches.Count >= 3, TimeSpan.FromSeconds(30)), "the active ran no batches");

        var progress = new List<StandbyProgress>();
        using var stopStandby = new CancellationTokenSource();
        var standbyRunner = Runner(Options(checkpoint, standby: true), source, sink);
        standbyRunner.StandbyProgressed += p =>
        {
            lock (progress) progress.Add(p);
        };
        var standby = Task.Run(() => standbyRunner.RunAsync(stopStandby.Token));

        // It follows while the active commits, and takes nothing over while the active runs.
        Assert.True(Eventually.WaitUntil(() => sink.Batches.Count >= 6 && Followed(progress) >= 5, TimeSpan.FromSeconds(30)),
            $"the standby did not follow: {string.Join(", ", progress)}");
        Assert.DoesNotContain(progress.ToList(), p => p.TookOver);

        // The active stops (its lock is released); new input arrives; the standby takes over and processes it.
        stopActive.Cancel();
        var activeSummary = await active;
        source.Add(0, Events(60, 40));
        Assert.True(Eventually.WaitUntil(() => sink.All.Count >= 100, TimeSpan.FromSeconds(30)), $"the standby did not take over: {string.Join(", ", progress)}");
        stopStandby.Cancel();
        var standbySummary = await standby;

        var tookOver = Assert.Single(progress.ToList(), p => p.TookOver);
        Assert.NotNull(tookOver.FollowedThroughBatch);
        Assert.True(standbySummary.Restored);
        Assert.Null(standbySummary.RestoredFromBatch); // continued from the followed state: no snapshot read at takeover
        Assert.Equal(0, standbySummary.BatchesReplayed);
        Assert.True(standbySummary.BatchesRun >= 4, $"the standby ran {standbySummary.BatchesRun} batches");
        Assert.Equal(activeSummary.LastCommittedBatch + standbySummary.BatchesRun, standbySummary.LastCommittedBatch);

        // Exactly the output of one uninterrupted run over the same input in the same batches.
        using var reference = new TempDir();
        var referenceSource = new MemorySource<Event>();
        referenceSource.Add(0, Events(0, 100));
        var referenceSink = new CollectingSink<Total?>();
        await Runner(Options(reference.Sub("checkpoint"), standby: false, TriggerMode.AvailableNow), referenceSource, referenceSink).RunAsync();
        Assert.Equal(referenceSink.Batches.Keys, sink.Batches.Keys);
        foreach (var (batch, records) in referenceSink.Batches) Assert.Equal(records, sink.Batches[batch]);
    }

    [Fact]
    public async Task A_standby_with_nobody_holding_the_checkpoint_becomes_active_at_once()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 30));
        var sink = new CollectingSink<Total?>();
        var progress = new List<StandbyProgress>();
        var runner = Runner(Options(dir.Sub("checkpoint"), standby: true, TriggerMode.AvailableNow), source, sink);
        runner.StandbyProgressed += progress.Add;
        var summary = await runner.RunAsync();
        Assert.Equal(new[] { new StandbyProgress(null, true, progress[0].Waited) }, progress);
        Assert.Equal(30, sink.All.Count);
        Assert.False(summary.Restored);
    }

    [Fact]
    public async Task A_non_positive_poll_interval_is_refused_by_name()
    {
        var options = Options("c", standby: true);
        options.StandbyPollInterval = TimeSpan.Zero;
        var runner = Runner(options, new MemorySource<Event>(), new CollectingSink<Total?>());
        Assert.Contains("StandbyPollInterval", (await Assert.ThrowsAsync<ArgumentException>(() => runner.RunAsync())).Message);
    }

    private static long Followed(List<StandbyProgress> progress)
    {
        lock (progress) return progress.Select(p => p.FollowedThroughBatch ?? -1).DefaultIfEmpty(-1).Max();
    }
}
