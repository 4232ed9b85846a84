using System.Text.Json;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

[Pipeline("progress-counts")]
public static partial class ProgressCounts
{
    [Source("events")]
    public static partial Source<Event> Events();

    [UpdateState("per-user", From = "events", Key = nameof(Event.User))]
    public static Total Count(string user, Event e, KeyedState<long> state)
    {
        state.Update(state.Value + 1);
        return new Total(user, e.Value, state.Value);
    }

    [Sink("out", From = "per-user")]
    public static partial Sink<Total> Out();
}

/// <summary>
/// Every batch's progress record (Spark's StreamingQueryProgress): counts, phases, each partition's planned range,
/// sinks, state per operator, rates; its JSON line; and the rolling log of those lines.
/// </summary>
public sealed class ProgressTests
{
    [Fact]
    public async Task Each_batch_reports_its_ranges_phases_sinks_state_and_rates()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>(partitions: 2);
        var p0 = Enumerable.Range(0, 25).Select(i => new Event("u" + (i % 4), i)).ToList();
        var p1 = Enumerable.Range(0, 15).Select(i => new Event("v" + (i % 3), i)).ToList();
        source.Add(0, p0);
        source.Add(1, p1);
        var sink = new CollectingSink<Total>();
        var progress = new List<BatchProgress>();
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        // The lag gauge, observed after each batch.
        var lagSeen = new List<(long Batch, string Partition, long Lag)>();
        long observing = -1;
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == PipelineMeter.Name && instrument.Name == "pipelinedsl.source.lag") l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            var map = new Dictionary<string, object?>();
            foreach (var tag in tags) map[tag.Key] = tag.Value;
            if (Equals(map["pipeline"], "progress-counts")) lagSeen.Add((observing, (string)map["partition"]!, value));
        });
        listener.Start();
        var runner = new PipelineRunner(ProgressCounts.Definition, new PipelineRunnerOptions
        {
            CheckpointDirectory = dir.Sub("checkpoint"), Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 10, CheckpointInterval = 2, Parallelism = 1,
        }).BindSource(ProgressCounts.Events(), source).BindSink(ProgressCounts.Out(), sink);
        runner.BatchCompleted += p =>
        {
            progress.Add(p);
            observing = p.BatchId;
            listener.RecordObservableInstruments();
        };
        await runner.RunAsync();

        // 10 records per partition per batch: p0 25 = 10 + 10 + 5, p1 15 = 10 + 5.
        Assert.Equal(new long[] { 0, 1, 2 }, progress.Select(p => p.BatchId));
        Assert.Equal(new long[] { 20, 15, 5 }, progress.Select(p => p.InputRecords));
        Assert.All(progress, p => Assert.Equal("progress-counts", p.PipelineId));
        Assert.All(progress, p => Assert.InRange(p.PlannedAt, before, DateTimeOffset.UtcNow.AddSeconds(1)));

        var first = progress[0].Sources.Single();
        Assert.Equal(("events", 20L), (first.Source, first.Records));
        static (string, long, long) Range(PartitionProgress p) => (p.Partition, p.StartPosition, p.EndPosition);
        Assert.Equal(new[] { ("0", 0L, 10L), ("1", 0L, 10L) }, first.Partitions.Select(Range));
        var second = progress[1].Sources.Single();
        Assert.Equal(new[] { ("0", 10L, 20L), ("1", 10L, 15L) }, second.Partitions.Select(Range));
        Assert.Contains(("0", 20L, 25L), progress[2].Sources.Single().Partitions.Select(Range));

        // Lag: how far each partition's data reached beyond the batch's end when it was planned.
        Assert.Equal(new long?[] { 15, 5 }, first.Partitions.Select(p => p.Lag));
        Assert.Equal(new long?[] { 25, 15 }, first.Partitions.Select(p => p.AvailablePosition));
        Assert.Equal(new long?[] { 5, 0 }, second.Partitions.Select(p => p.Lag));
        Assert.Equal(0, progress[2].Sources.Single().Partitions.Single(p => p.Partition == "0").Lag);
        Assert.Contains((0L, "0", 15L), lagSeen);
        Assert.Contains((0L, "1", 5L), lagSeen);
        Assert.Contains((1L, "0", 5L), lagSeen);

        for (int b = 0; b < 3; b++)
        {
            var p = progress[b];
            Assert.Equal(new SinkProgress("out", sink.Batches[b].Count), p.Sinks.Single());
            Assert.Equal(p.OutputRecords, sink.Batches[b].Count);
            // Users seen so far: u0-u3 from partition 0 (all within its first 4 records), v0-v2 from partition 1.
            var state = p.StateOperators.Single();
            Assert.Equal(("per-user", 7L), (state.OperatorId, state.Keys));
            Assert.True(state.DeltaBytes > 0, $"batch {b}: the delta's bytes");
            Assert.Equal(p.SnapshotWritten || b > 0 && progress[b - 1].StateOperators.Single().SnapshotBytes is not null, state.SnapshotBytes is not null);
            foreach (string phase in new[] { "plan", "read", "execute", "offsets", "sink", "commit" }) Assert.True(p.Phases.ContainsKey(phase), $"batch {b} lacks phase {phase}");
            Assert.Equal(p.SnapshotWritten, p.Phases.ContainsKey("snapshot"));
            // The phases follow one another from the start of the plan, which is where the batch's duration starts too.
            var phases = TimeSpan.FromTicks(p.Phases.Values.Sum(t => t.Ticks));
            Assert.True(phases <= p.Duration && p.Duration - phases < TimeSpan.FromMilliseconds(250), $"batch {b}: phases {phases} against duration {p.Duration}");
            Assert.True(p.ProcessedRecordsPerSecond > 0);
            Assert.Empty(p.Watermarks);
        }

        Assert.True(progress[1].SnapshotWritten); // every 2 batches
        Assert.Equal(0, progress[0].InputRecordsPerSecond);
        Assert.True(progress[1].InputRecordsPerSecond > 0);

        // The JSON line carries the same.
        using var json = JsonDocument.Parse(progress[1].ToJson());
        var root = json.RootElement;
        Assert.Equal(1, root.GetProperty("batch").GetInt64());
        Assert.Equal(15, root.GetProperty("inputRecords").GetInt64());
        Assert.Equal(15, root.GetProperty("sources")[0].GetProperty("partitions")[1].GetProperty("endPosition").GetInt64());
        Assert.Equal(5, root.GetProperty("sources")[0].GetProperty("partitions")[0].GetProperty("lag").GetInt64());
        Assert.Equal(7, root.GetProperty("stateOperators")[0].GetProperty("keys").GetInt64());
        Assert.Equal(sink.Batches[1].Count, root.GetProperty("sinks")[0].GetProperty("records").GetInt64());
        Assert.True(root.GetProperty("phasesMs").GetProperty("execute").GetDouble() >= 0);
        Assert.True(root.GetProperty("snapshotWritten").GetBoolean());
    }

    [Fact]
    public void The_progress_log_rolls_keeps_the_newest_files_and_continues_after_a_restart()
    {
        using var dir = new TempDir();
        static BatchProgress Batch(long id) => new(id, 10, 10, TimeSpan.FromMilliseconds(5), 3, false, false, 0) { PipelineId = "p", PlannedAt = DateTimeOffset.UnixEpoch.AddSeconds(id) };
        int lineBytes = System.Text.Encoding.UTF8.GetByteCount(Batch(10).ToJson() + "\n");
        using (var log = new BatchProgressLog(dir.Path, maxFileBytes: lineBytes * 4, maxFiles: 3))
        {
            for (long b = 10; b < 40; b++) log.Append(Batch(b)); // 30 lines, 4 a file: 8 files, the newest 3 kept
        }

        var files = Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(new[] { "progress-000006.jsonl", "progress-000007.jsonl", "progress-000008.jsonl" }, files.Select(Path.GetFileName));
        var batches = files.SelectMany(File.ReadLines).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("batch").GetInt64()).ToList();
        Assert.Equal(Enumerable.Range(30, 10).Select(b => (long)b), batches); // files 6-8: lines 21-30, batches 30-39

        using (var again = new BatchProgressLog(dir.Path, maxFileBytes: lineBytes * 4, maxFiles: 3))
        {
            again.Append(Batch(40));
            Assert.EndsWith("progress-000009.jsonl", again.CurrentFile);
        }

        Assert.Throws<ArgumentException>(() => new BatchProgressLog(dir.Path, maxFiles: 0));
    }
}
