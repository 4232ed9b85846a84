using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>A pipeline no other test runs: its measurements (tagged with its id) are this test's alone.</summary>
[Pipeline("metrics-totals")]
public static partial class MetricsTotals
{
    [Source("events")]
    public static partial Source<Event> Events();

    [Filter("positive", From = "events")]
    public static bool Positive(Event e) => e.Value > 3;

    [UpdateState("totals", From = "positive", Key = nameof(Event.User))]
    public static Total? Update(string user, Event e, KeyedState<Running> state)
    {
        var next = new Running(state.Value.Sum + e.Value, state.Value.Count + 1);
        state.Update(next);
        return new Total(user, next.Sum, next.Count);
    }

    [Sink("out", From = "totals")]
    public static partial Sink<Total?> Out();
}

/// <summary>The "PipelineDsl" meter's values equal what the run did, read through a <see cref="MeterListener"/>.</summary>
public sealed class MetricsTests
{
    private sealed record Measurement(string Instrument, double Value, Dictionary<string, object?> Tags);

    private static MeterListener Listen(ConcurrentQueue<Measurement> into)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "PipelineDsl") l.EnableMeasurementEvents(instrument);
            },
        };
        void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var map = new Dictionary<string, object?>();
            foreach (var tag in tags) map[tag.Key] = tag.Value;
            if (Equals(map.GetValueOrDefault("pipeline"), "metrics-totals")) into.Enqueue(new Measurement(instrument.Name, value, map));
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Add(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Add(i, v, t));
        listener.Start();
        return listener;
    }

    [Fact]
    public async Task The_meter_counts_batches_records_phases_state_and_recoveries_as_the_run_did()
    {
        var measurements = new ConcurrentQueue<Measurement>();
        using var listener = Listen(measurements);
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Enumerable.Range(0, 95).Select(i => new Event("u" + (i % 9), i % 7)));
        var sink = new CollectingSink<Total?>();
        var options = new PipelineRunnerOptions { CheckpointDirectory = dir.Sub("checkpoint"), Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 10, CheckpointInterval = 4 };
        var summary = await new PipelineRunner(MetricsTotals.Definition, options).BindSource(MetricsTotals.Events(), source).BindSink(MetricsTotals.Out(), sink).RunAsync();

        double Sum(string instrument, Func<Measurement, bool>? where = null) => measurements.Where(m => m.Instrument == instrument && (where?.Invoke(m) ?? true)).Sum(m => m.Value);
        int Count(string instrument, string? phase = null) => measurements.Count(m => m.Instrument == instrument && (phase is null || Equals(m.Tags.GetValueOrDefault("phase"), phase)));

        Assert.Equal(10, summary.BatchesRun);
        Assert.Equal(summary.BatchesRun, Sum("pipelinedsl.batches", m => Equals(m.Tags["replayed"], false)));
        Assert.Equal(95, Sum("pipelinedsl.records.input", m => Equals(m.Tags["source"], "events")));
        Assert.Equal(sink.All.Count, Sum("pipelinedsl.records.output", m => Equals(m.Tags["sink"], "out")));
        Assert.True(sink.All.Count is > 0 and < 95);
        Assert.Equal(summary.BatchesRun, Count("pipelinedsl.batch.duration"));
        foreach (var phase in new[] { "plan", "read", "execute", "offsets", "sink", "commit" }) Assert.Equal(summary.BatchesRun, Count("pipelinedsl.batch.phase.duration", phase));
        Assert.Equal(2, Count("pipelinedsl.batch.phase.duration", "snapshot")); // after batches 3 and 7 (the final snapshot is written at the end, not in a batch)
        Assert.All(measurements.Where(m => m.Instrument.EndsWith("duration", StringComparison.Ordinal)), m => Assert.InRange(m.Value, 0, 60));

        // State keys: up to what the run held, back to zero when the run ends (this process no longer holds them).
        double running = 0, peak = 0;
        foreach (var m in measurements.Where(m => m.Instrument == "pipelinedsl.state.keys"))
        {
            running += m.Value;
            peak = Math.Max(peak, running);
        }

        Assert.Equal(summary.StateKeys, peak);
        Assert.Equal(0, running);
        Assert.Equal(0, Sum("pipelinedsl.recoveries"));

        // A second run continues the checkpoint: one recovery.
        source.Add(0, new Event("u1", 5));
        await new PipelineRunner(MetricsTotals.Definition, options).BindSource(MetricsTotals.Events(), source).BindSink(MetricsTotals.Out(), sink).RunAsync();
        Assert.Equal(1, Sum("pipelinedsl.recoveries"));
        Assert.Equal(96, Sum("pipelinedsl.records.input"));
    }
}
