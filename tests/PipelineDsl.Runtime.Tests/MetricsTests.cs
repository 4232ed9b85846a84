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

/// <summary>Event time, for the watermark gauge; no other test runs it.</summary>
[Pipeline("metrics-event-time")]
public static partial class MetricsEventTime
{
    [Source("readings")]
    public static partial Source<Reading> Readings();

    [Watermark("timed", From = "readings", Time = nameof(Reading.Time), MaxOutOfOrdernessMs = 1000)]
    public static partial Stream<Reading> Timed();

    [EventTimeWindow("tumbling", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), SizeMs = 1000)]
    public static Reading Sum(Reading a, Reading b) => a with { Value = a.Value + b.Value };

    [Sink("out", From = "tumbling")]
    public static partial Sink<EventWindow<string, Reading>> Out();
}

/// <summary>The "PipelineDsl" meter's values equal what the run did, read through a <see cref="MeterListener"/>.</summary>
public sealed class MetricsTests
{
    private sealed record Measurement(string Instrument, double Value, Dictionary<string, object?> Tags);

    private static MeterListener Listen(ConcurrentQueue<Measurement> into, string pipeline = "metrics-totals")
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
            if (Equals(map.GetValueOrDefault("pipeline"), pipeline)) into.Enqueue(new Measurement(instrument.Name, value, map));
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
        Assert.All(measurements.Where(m => m.Instrument == "pipelinedsl.state.keys"), m => Assert.Equal("totals", m.Tags["operator"]));
        Assert.Equal(0, Sum("pipelinedsl.recoveries"));

        // A second run continues the checkpoint: one recovery.
        source.Add(0, new Event("u1", 5));
        await new PipelineRunner(MetricsTotals.Definition, options).BindSource(MetricsTotals.Events(), source).BindSink(MetricsTotals.Out(), sink).RunAsync();
        Assert.Equal(1, Sum("pipelinedsl.recoveries"));
        Assert.Equal(96, Sum("pipelinedsl.records.input"));
    }

    [Fact]
    public async Task State_sizes_and_checkpoint_writes_equal_the_files_and_records_of_the_run()
    {
        var measurements = new ConcurrentQueue<Measurement>();
        using var listener = Listen(measurements);
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Enumerable.Range(0, 95).Select(i => new Event("u" + (i % 9), i % 7)));
        var options = new PipelineRunnerOptions { CheckpointDirectory = dir.Sub("checkpoint"), Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 10, CheckpointInterval = 4, RetainedSnapshots = 100 };
        var runner = new PipelineRunner(MetricsTotals.Definition, options).BindSource(MetricsTotals.Events(), source).BindSink(MetricsTotals.Out(), new CollectingSink<Total?>());
        var progress = new List<BatchProgress>();
        var gauged = new List<(long Batch, double Bytes)>();
        runner.BatchCompleted += p =>
        {
            progress.Add(p);
            // The gauge reports the newest snapshot's size while the run goes on (a run that ended reports nothing).
            listener.RecordObservableInstruments();
            foreach (var m in measurements.Where(m => m.Instrument == "pipelinedsl.state.snapshot.size").Skip(gauged.Count)) gauged.Add((p.BatchId, m.Value));
        };
        var summary = await runner.RunAsync();
        Assert.Equal(10, summary.BatchesRun);

        // Per batch: the delta's bytes, as the progress record says, once per batch for the one stateful operator.
        var deltas = measurements.Where(m => m.Instrument == "pipelinedsl.state.delta.size").ToList();
        Assert.Equal(10, deltas.Count);
        Assert.All(deltas, m => Assert.Equal("totals", m.Tags["operator"]));
        Assert.Equal(progress.Select(p => (double)p.StateOperators.Single().DeltaBytes!.Value), deltas.Select(m => m.Value));
        Assert.All(deltas, m => Assert.True(m.Value > 0));

        // Keys updated per batch: the users of the batch's records that pass the filter.
        var updated = Enumerable.Range(0, 10).Select(b => (long?)Enumerable.Range(10 * b, Math.Min(10, 95 - 10 * b)).Where(i => i % 7 > 3).Select(i => i % 9).Distinct().Count());
        Assert.Equal(updated, progress.Select(p => p.StateOperators.Single().Updated));

        // Snapshots after batches 3 and 7: the gauge and the progress record say the operator's part's size, which is
        // inside the snapshot file and smaller than it.
        Assert.Null(progress[2].StateOperators.Single().SnapshotBytes);
        long snapshot3 = progress[3].StateOperators.Single().SnapshotBytes!.Value;
        long snapshot7 = progress[7].StateOperators.Single().SnapshotBytes!.Value;
        Assert.Equal(new[] { (3L, (double)snapshot3), (7L, (double)snapshot7) }, gauged.Where(g => g.Batch is 3 or 7).Distinct().ToArray());
        // (On the RocksDB backend the part is a file list, and the size counts the table files it uploaded too.)
        string sharedFolder = Path.Combine(options.CheckpointDirectory!, "shared");
        long sharedBytes = Directory.Exists(sharedFolder) ? Directory.GetFiles(sharedFolder).Sum(f => new FileInfo(f).Length) : 0;
        Assert.InRange(snapshot3, 9 * 2, new FileInfo(Path.Combine(options.CheckpointDirectory!, "state", 3.ToString("D19"))).Length + sharedBytes);

        // Every offsets and commit file of the run, and each snapshot, was measured with its size on disk.
        string checkpoint = options.CheckpointDirectory!;
        double[] Sizes(string file) => measurements.Where(m => m.Instrument == "pipelinedsl.checkpoint.write.size" && Equals(m.Tags["file"], file)).Select(m => m.Value).ToArray();
        double[] OnDisk(string folder) => Directory.GetFiles(Path.Combine(checkpoint, folder)).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal).Select(f => (double)new FileInfo(f).Length).ToArray();
        Assert.Equal(OnDisk("offsets"), Sizes("offsets"));
        Assert.Equal(OnDisk("commits"), Sizes("commit"));
        Assert.Equal(OnDisk("state"), Sizes("snapshot"));
        Assert.Equal(3, Sizes("snapshot").Length); // after batches 3 and 7, and the final one
        foreach (var file in new[] { "offsets", "commit", "snapshot" })
            Assert.Equal(Sizes(file).Length, measurements.Count(m => m.Instrument == "pipelinedsl.checkpoint.write.duration" && Equals(m.Tags["file"], file) && m.Value is >= 0 and < 60));
    }

    [Fact]
    public async Task The_watermark_and_rate_gauges_report_each_batch_while_the_run_goes_on()
    {
        var measurements = new ConcurrentQueue<Measurement>();
        using var listener = Listen(measurements, "metrics-event-time");
        using var dir = new TempDir();
        var source = new MemorySource<Reading>();
        source.Add(0, Enumerable.Range(0, 40).Select(i => new Reading("s" + (i % 3), 10_000 + i * 250, i)));
        var options = new PipelineRunnerOptions { CheckpointDirectory = dir.Sub("checkpoint"), Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 10 };
        var runner = new PipelineRunner(MetricsEventTime.Definition, options)
            .BindSource(MetricsEventTime.Readings(), source)
            .BindSink(MetricsEventTime.Out(), new CollectingSink<EventWindow<string, Reading>>());
        var pairs = new List<(long Progress, double Gauge)>();
        runner.BatchCompleted += p =>
        {
            int before = measurements.Count;
            listener.RecordObservableInstruments();
            var observed = measurements.Skip(before).ToList();
            var gauge = observed.Single(m => m.Instrument == "pipelinedsl.watermark");
            Assert.Equal("timed", gauge.Tags["operator"]);
            Assert.Equal(p.InputRecordsPerSecond, observed.Single(m => m.Instrument == "pipelinedsl.records.input_rate").Value);
            Assert.Equal(p.ProcessedRecordsPerSecond, observed.Single(m => m.Instrument == "pipelinedsl.records.processing_rate").Value);
            Assert.True(p.ProcessedRecordsPerSecond > 0);
            pairs.Add((p.Watermarks.Single().WatermarkMs, gauge.Value));
        };

        await runner.RunAsync();

        Assert.Equal(4, pairs.Count);
        Assert.All(pairs, p => Assert.Equal(p.Progress, p.Gauge));
        // The newest event time of each batch of 10 readings, less the allowed out-of-orderness.
        Assert.Equal(new double[] { 10_000 + 9 * 250 - 1000, 10_000 + 19 * 250 - 1000, 10_000 + 29 * 250 - 1000, 10_000 + 39 * 250 - 1000 }, pairs.Select(p => p.Gauge));
    }
}
