using PipelineDsl.CompilerServices;
using PipelineDsl.Execution;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>A sensor reading with an event time (ms) and a value.</summary>
[StateContract]
public sealed partial record Reading([property: Field(0)] string Sensor, [property: Field(1)] long Time, [property: Field(2)] long Value);

/// <summary>An order and a payment, for the interval join.</summary>
[StateContract]
public sealed partial record PurchaseOrder([property: Field(0)] long Id, [property: Field(1)] long Time);

[StateContract]
public sealed partial record Payment([property: Field(0)] long OrderId, [property: Field(1)] long Time);

[Pipeline("event-time")]
public static partial class EventTimePipeline
{
    [Source("readings")]
    public static partial Source<Reading> Readings();

    [Watermark("timed", From = "readings", Time = nameof(Reading.Time), MaxOutOfOrdernessMs = 1000)]
    public static partial Stream<Reading> Timed();

    [EventTimeWindow("tumbling", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), SizeMs = 1000)]
    public static Reading Sum(Reading a, Reading b) => a with { Value = a.Value + b.Value };

    [EventTimeWindow("hopping", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), SizeMs = 1000, SlideMs = 500)]
    public static Reading HopSum(Reading a, Reading b) => a with { Value = a.Value + b.Value };

    [SessionWindow("sessions", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), GapMs = 500)]
    public static Reading Count(Reading a, Reading b) => a with { Value = a.Value + b.Value };

    [Sink("tumbling-out", From = "tumbling")]
    public static partial Sink<EventWindow<string, Reading>> TumblingOut();

    [Sink("hopping-out", From = "hopping")]
    public static partial Sink<EventWindow<string, Reading>> HoppingOut();

    [Sink("sessions-out", From = "sessions")]
    public static partial Sink<EventWindow<string, Reading>> SessionsOut();
}

[Pipeline("interval-join")]
public static partial class IntervalJoinPipeline
{
    [Source("orders")]
    public static partial Source<PurchaseOrder> Orders();

    [Source("payments")]
    public static partial Source<Payment> Payments();

    [Watermark("timed-orders", From = "orders", Time = nameof(PurchaseOrder.Time))]
    public static partial Stream<PurchaseOrder> TimedOrders();

    [Watermark("timed-payments", From = "payments", Time = nameof(Payment.Time))]
    public static partial Stream<Payment> TimedPayments();

    // A payment counts when it comes at most 1000 ms after its order (and not before it).
    [StreamJoin("paid", Left = "timed-orders", Right = "timed-payments", LeftKey = nameof(PurchaseOrder.Id), RightKey = nameof(Payment.OrderId),
        LeftTime = nameof(PurchaseOrder.Time), RightTime = nameof(Payment.Time), LowerBoundMs = 0, UpperBoundMs = 1000)]
    public static string Paid(PurchaseOrder o, Payment p) => $"{o.Id}@{o.Time}->{p.Time}";

    [Sink("out", From = "paid")]
    public static partial Sink<string> Out();
}

/// <summary>Hopping windows whose slide divides the size (panes of 500 ms) and whose slide does not (panes of 200 ms).</summary>
[Pipeline("hopping-windows")]
public static partial class HoppingPipeline
{
    [Source("readings")]
    public static partial Source<Reading> Readings();

    [Watermark("timed", From = "readings", Time = nameof(Reading.Time), MaxOutOfOrdernessMs = 1000)]
    public static partial Stream<Reading> Timed();

    [EventTimeWindow("by-500", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), SizeMs = 1500, SlideMs = 500)]
    public static Reading Sum500(Reading a, Reading b) => a with { Value = a.Value + b.Value };

    [EventTimeWindow("by-400", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), SizeMs = 1000, SlideMs = 400)]
    public static Reading Sum400(Reading a, Reading b) => a with { Value = a.Value + b.Value };

    [Sink("out-500", From = "by-500")]
    public static partial Sink<EventWindow<string, Reading>> Out500();

    [Sink("out-400", From = "by-400")]
    public static partial Sink<EventWindow<string, Reading>> Out400();
}

/// <summary>
/// Watermarks, event-time windows, sessions and interval joins, batch by batch: each RunAsync below is one
/// batch on a new runner restored from the checkpoint, so every step also proves the state survives a restart.
/// </summary>
public class EventTimeTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private sealed class Harness : IDisposable
    {
        private readonly TempDir _dir = new();
        private readonly bool _deltas;

        public Harness(bool deltas) => _deltas = deltas;

        public MemorySource<Reading> Source { get; } = new();
        public CollectingSink<EventWindow<string, Reading>> Tumbling { get; } = new();
        public CollectingSink<EventWindow<string, Reading>> Hopping { get; } = new();
        public CollectingSink<EventWindow<string, Reading>> Sessions { get; } = new();
        public List<BatchProgress> Progress { get; } = new();

        public async Task BatchAsync(params Reading[] readings)
        {
            Source.Add(0, readings);
            var runner = new PipelineRunner(EventTimePipeline.Definition, new PipelineRunnerOptions { CheckpointDirectory = _dir.Sub("cp"), Trigger = TriggerMode.AvailableNow, CheckpointInterval = 3, WriteStateDeltas = _deltas })
                .BindSource(EventTimePipeline.Readings(), Source)
                .BindSink(EventTimePipeline.TumblingOut(), Tumbling)
                .BindSink(EventTimePipeline.HoppingOut(), Hopping)
                .BindSink(EventTimePipeline.SessionsOut(), Sessions);
            runner.BatchCompleted += Progress.Add;
            await runner.RunAsync();
        }

        public void Dispose() => _dir.Dispose();
    }

    private static string Show(EventWindow<string, Reading> w) => $"{w.Key}[{w.Start},{w.End})={w.Value.Value}";

    [Theory]
    [InlineData(false)] // restore = snapshot + re-run of the batches after it
    [InlineData(true)] // restore = snapshot + the batches' state deltas
    public async Task Tumbling_windows_fire_when_the_watermark_passes_their_end_and_late_records_are_dropped(bool deltas)
    {
        using var h = new Harness(deltas);
        await h.BatchAsync(new Reading("a", 100, 1), new Reading("b", 900, 10), new Reading("a", 1500, 2), new Reading("a", 2500, 3));
        // Watermark 2500 - 1000 = 1500: only [0, 1000) is complete.
        Assert.Equal(new[] { "a[0,1000)=1", "b[0,1000)=10" }, h.Tumbling.All.Select(Show));

        // 500 is late ([0, 1000) fired); 1200 is behind the watermark but its window is still open, so it counts.
        await h.BatchAsync(new Reading("a", 500, 100), new Reading("a", 1200, 4), new Reading("b", 4200, 20));
        Assert.Equal(3, h.Progress[^1].LateRecords); // dropped by each of the three window operators
        Assert.Equal(new[] { "a[0,1000)=1", "b[0,1000)=10", "a[1000,2000)=6", "a[2000,3000)=3" }, h.Tumbling.All.Select(Show));

        // Nothing new: the watermark stays, nothing fires, the open window of b is kept.
        await h.BatchAsync(new Reading("b", 3900, 1));
        Assert.Equal(4, h.Tumbling.All.Count);
        await h.BatchAsync(new Reading("c", 6000, 1));
        Assert.Equal("b[3000,4000)=1", Show(h.Tumbling.All[4]));
        Assert.Equal("b[4000,5000)=20", Show(h.Tumbling.All[5]));
    }

    [Theory]
    [InlineData(false)] // restore = snapshot + re-run of the batches after it
    [InlineData(true)] // restore = snapshot + the batches' state deltas
    public async Task Hopping_windows_hold_each_record_in_every_window_that_covers_it(bool deltas)
    {
        using var h = new Harness(deltas);
        await h.BatchAsync(new Reading("a", 100, 1), new Reading("a", 700, 2), new Reading("a", 1200, 4), new Reading("a", 9000, 0));
        Assert.Equal(new[] { "a[-500,500)=1", "a[0,1000)=3", "a[500,1500)=6", "a[1000,2000)=4" }, h.Hopping.All.Select(Show).Take(4));
    }

    [Theory]
    [InlineData(false)] // restore = snapshot + re-run of the batches after it
    [InlineData(true)] // restore = snapshot + the batches' state deltas
    public async Task Sessions_merge_records_closer_than_the_gap_even_across_batches_and_out_of_order(bool deltas)
    {
        using var h = new Harness(deltas);
        await h.BatchAsync(new Reading("a", 0, 1), new Reading("a", 900, 1));
        await h.BatchAsync(new Reading("a", 400, 1), new Reading("b", 100, 1)); // 400 bridges [0,500) and [900,1400)
        await h.BatchAsync(new Reading("a", 3000, 1), new Reading("b", 3000, 1));
        Assert.Equal(new[] { "b[100,600)=1", "a[0,1400)=3" }, h.Sessions.All.Select(Show));
        await h.BatchAsync(new Reading("z", 10_000, 1));
        Assert.Equal(new[] { "b[100,600)=1", "a[0,1400)=3", "a[3000,3500)=1", "b[3000,3500)=1" }, h.Sessions.All.Select(Show));
    }

    [Theory]
    [InlineData(false)] // restore = snapshot + re-run of the batches after it
    [InlineData(true)] // restore = snapshot + the batches' state deltas
    public async Task Window_state_stays_bounded_on_an_endless_stream(bool deltas)
    {
        using var h = new Harness(deltas);
        var keys = new List<long>();
        for (int batch = 0; batch < 30; batch++)
        {
            // Every batch: 50 sensors, 2 s of event time; a fresh set of sensor names each time.
            var readings = Enumerable.Range(0, 50).Select(i => new Reading($"s{batch}-{i}", batch * 2000L + i * 40, 1)).ToArray();
            await h.BatchAsync(readings);
            keys.Add(h.Progress[^1].StateKeys);
        }

        // Closed windows and sessions are removed: the state does not grow with the stream.
        Assert.True(keys.Skip(5).Max() <= keys[4] * 2, $"state keys grew: {string.Join(", ", keys)}");
        Assert.Equal(29 * 50, h.Tumbling.All.Count(w => w.End <= 29 * 2000 - 1000 + 1000)); // all but the last batch's windows fired
    }

    [Theory]
    [InlineData(false)] // restore = snapshot + re-run of the batches after it
    [InlineData(true)] // restore = snapshot + the batches' state deltas
    public async Task An_interval_join_matches_either_arrival_order_within_its_bounds_and_then_forgets(bool deltas)
    {
        using var dir = new TempDir();
        var orders = new MemorySource<PurchaseOrder>();
        var payments = new MemorySource<Payment>();
        var sink = new CollectingSink<string>();
        var progress = new List<BatchProgress>();
        async Task Batch(PurchaseOrder[] o, Payment[] p)
        {
            orders.Add(0, o);
            payments.Add(0, p);
            var runner = new PipelineRunner(IntervalJoinPipeline.Definition, new PipelineRunnerOptions { CheckpointDirectory = dir.Sub("cp"), Trigger = TriggerMode.AvailableNow, WriteStateDeltas = deltas })
                .BindSource(IntervalJoinPipeline.Orders(), orders)
                .BindSource(IntervalJoinPipeline.Payments(), payments)
                .BindSink(IntervalJoinPipeline.Out(), sink);
            runner.BatchCompleted += progress.Add;
            await runner.RunAsync();
        }

        await Batch(new PurchaseOrder[] { new(1, 1000), new(2, 1000) }, new Payment[] { new(3, 1100) });  // payment 3 before its order
        await Batch(new PurchaseOrder[] { new(3, 1050) }, new Payment[] { new(1, 1999), new(2, 2001) }); // 2001 is past order 2's bound
        Assert.Equal(new[] { "3@1050->1100", "1@1000->1999" }, sink.All);
        Assert.True(progress[^1].StateKeys > 0);

        // Both watermarks move far ahead: every order and payment can match nothing more and leaves state.
        await Batch(new PurchaseOrder[] { new(9, 10_000) }, new Payment[] { new(9, 10_000) });
        Assert.Equal("9@10000->10000", sink.All[^1]);
        await Batch(new PurchaseOrder[] { new(10, 20_000) }, new Payment[] { new(11, 20_000) });
        Assert.Equal(2, progress[^1].StateKeys); // only orders/payments at 20000 remain
        // A payment older than the watermark is late: dropped even though order 10 is still kept.
        await Batch(Array.Empty<PurchaseOrder>(), new Payment[] { new(10, 19_000), new(10, 20_500) });
        Assert.Equal(1, progress[^1].LateRecords);
        Assert.Equal("10@20000->20500", sink.All[^1]);
    }

    [Theory]
    [InlineData("snapshot")] // the snapshot written when the first run ended
    [InlineData("deltas")] // no snapshot: batch 0's state delta
    [InlineData("replay")] // no snapshot and no deltas: batch 0 re-run
    public async Task A_restored_interval_join_still_forgets_each_record_of_a_key_when_the_watermark_passes_it(string restoreFrom)
    {
        using var dir = new TempDir();
        var orders = new MemorySource<PurchaseOrder>();
        var payments = new MemorySource<Payment>();
        var progress = new List<BatchProgress>();
        PipelineRunner Runner(long recordsPerBatch)
        {
            var options = new PipelineRunnerOptions
            {
                CheckpointDirectory = dir.Sub("cp"), Trigger = TriggerMode.AvailableNow, WriteStateDeltas = restoreFrom != "replay", MaxRecordsPerPartition = recordsPerBatch,
            };
            var runner = new PipelineRunner(IntervalJoinPipeline.Definition, options)
                .BindSource(IntervalJoinPipeline.Orders(), orders)
                .BindSource(IntervalJoinPipeline.Payments(), payments)
                .BindSink(IntervalJoinPipeline.Out(), new CollectingSink<string>());
            runner.BatchCompleted += progress.Add;
            return runner;
        }

        // Batch 0: two payments of order 7, which the watermark passes at different times (1000 and 5000).
        payments.Add(0, new Payment[] { new(7, 1000), new(7, 5000) });
        orders.Add(0, new PurchaseOrder[] { new(1, 900) });
        await Runner(recordsPerBatch: 2).RunAsync();
        if (restoreFrom != "snapshot") Directory.Delete(Path.Combine(dir.Sub("cp"), "state"), recursive: true);

        // One restored runner then runs three batches: the first passes payment 7@1000, the second 7@5000.
        orders.Add(0, new PurchaseOrder[] { new(8, 3000), new(9, 20_000), new(10, 20_000) });
        payments.Add(0, new Payment[] { new(8, 3000), new(9, 20_000), new(10, 20_000) });
        var summary = await Runner(recordsPerBatch: 1).RunAsync();
        Assert.Equal(restoreFrom == "snapshot" ? 0 : null, summary.RestoredFromBatch);
        Assert.Equal(restoreFrom == "deltas" ? 1 : 0, summary.BatchesFromDeltas);
        Assert.Equal(restoreFrom == "replay" ? 1 : 0, summary.BatchesReplayed);

        // Left at watermark 20000: orders and payments 9 and 10, and nothing of key 7 (or 1 or 8).
        Assert.Equal(3, summary.BatchesRun);
        Assert.Equal(2, progress[^1].StateKeys);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Hopping_windows_over_many_batches_equal_a_model_that_adds_each_record_to_each_open_window(bool deltas)
    {
        // Readings arrive up to 3.5 s out of order across 25 batches, each batch on a new runner restored from the
        // checkpoint. The model is the definition: a record counts in each window that covers it and has not
        // fired (its end is after the previous batch's watermark); a window fires in the first batch whose
        // watermark reaches its end; windows come out by start, then key.
        using var dir = new TempDir();
        var source = new MemorySource<Reading>();
        var out500 = new CollectingSink<EventWindow<string, Reading>>();
        var out400 = new CollectingSink<EventWindow<string, Reading>>();
        var progress = new List<BatchProgress>();
        var random = TestRandom.Create(20261121, log);
        var model500 = new WindowModel(1500, 500);
        var model400 = new WindowModel(1000, 400);
        long maxTime = long.MinValue, watermark = long.MinValue, lateInModel = 0;
        for (int batch = 0; batch < 25; batch++)
        {
            var readings = Enumerable.Range(0, 40)
                .Select(_ => new Reading(((char)('a' + random.Next(5))).ToString(), batch * 700L + random.Next(-3500, 700), random.Next(1, 10)))
                .ToArray();
            long previous = watermark;
            maxTime = Math.Max(maxTime, readings.Max(r => r.Time));
            watermark = maxTime - 1000;
            foreach (var r in readings)
            {
                bool late500 = !model500.Add(r, previous), late400 = !model400.Add(r, previous);
                lateInModel += (late500 ? 1 : 0) + (late400 ? 1 : 0);
            }

            model500.Fire(previous, watermark);
            model400.Fire(previous, watermark);
            source.Add(0, readings);
            var runner = new PipelineRunner(HoppingPipeline.Definition, new PipelineRunnerOptions { CheckpointDirectory = dir.Sub("cp"), Trigger = TriggerMode.AvailableNow, CheckpointInterval = 3, WriteStateDeltas = deltas })
                .BindSource(HoppingPipeline.Readings(), source)
                .BindSink(HoppingPipeline.Out500(), out500)
                .BindSink(HoppingPipeline.Out400(), out400);
            runner.BatchCompleted += progress.Add;
            await runner.RunAsync();
        }

        Assert.True(model500.Fired.Count > 50 && model400.Fired.Count > 50, "the model fired too few windows to prove anything");
        Assert.True(lateInModel > 0, "no record was late, so lateness is not exercised");
        Assert.Equal(model500.Fired, out500.All.Select(Show));
        Assert.Equal(model400.Fired, out400.All.Select(Show));
        Assert.Equal(lateInModel, progress.Sum(p => p.LateRecords));
    }

    /// <summary>The plain definition of hopping windows, for the test above.</summary>
    private sealed class WindowModel
    {
        private readonly long _size, _slide;
        private readonly SortedDictionary<long, SortedDictionary<string, long>> _open = new();

        public WindowModel(long size, long slide) => (_size, _slide) = (size, slide);

        public List<string> Fired { get; } = new();

        public bool Add(Reading r, long previousWatermark)
        {
            bool added = false;
            long first = r.Time - ((r.Time % _slide) + _slide) % _slide;
            for (long s = first; s > r.Time - _size; s -= _slide)
            {
                if (s + _size <= previousWatermark) continue;
                if (!_open.TryGetValue(s, out var sums)) _open[s] = sums = new SortedDictionary<string, long>(StringComparer.Ordinal);
                sums[r.Sensor] = sums.GetValueOrDefault(r.Sensor) + r.Value;
                added = true;
            }

            return added;
        }

        public void Fire(long previous, long watermark)
        {
            foreach (var (s, sums) in _open.Where(w => w.Key + _size <= watermark).ToList())
            {
                Assert.True(s + _size > previous, "the model kept a window that should have fired already");
                Fired.AddRange(sums.Select(p => $"{p.Key}[{s},{s + _size})={p.Value}"));
                _open.Remove(s);
            }
        }
    }

    [Fact]
    public void An_interval_join_restores_the_state_and_whole_key_deltas_of_an_older_build()
    {
        // Builds before append-and-expire deltas wrote a join's delta as an array of per-key entries: the records
        // appended to a key ([key, lefts, rights, true]), or a key's whole lists after expiry removed some.
        var node = (StreamJoinNode<long, PurchaseOrder, Payment, string>)IntervalJoinPipeline.Definition.Operators.Single(o => o.Id == "paid");
        void Entry(MessagePackWriter w, long key, PurchaseOrder[] lefts, Payment[] rights, bool appended = false)
        {
            w.WriteArrayHeader(appended ? 4 : 3);
            node.KeyFormatter.Serialize(w, key);
            w.WriteArrayHeader(lefts.Length);
            foreach (var l in lefts) node.LeftFormatter.Serialize(w, l);
            w.WriteArrayHeader(rights.Length);
            foreach (var r in rights) node.RightFormatter.Serialize(w, r);
            if (appended) w.Write(true);
        }

        // The old snapshot: payments 7@1000 and 7@5000 wait for order 7. The old delta: expiry at 3000 rewrote
        // key 7 without 7@1000, and order 8 and its payment were appended.
        byte[] oldSnapshot = Bytes(w => { w.WriteArrayHeader(1); Entry(w, 7, Array.Empty<PurchaseOrder>(), new Payment[] { new(7, 1000), new(7, 5000) }); });
        byte[] oldDelta = Bytes(w =>
        {
            w.WriteArrayHeader(2);
            Entry(w, 7, Array.Empty<PurchaseOrder>(), new Payment[] { new(7, 5000) });
            Entry(w, 8, new PurchaseOrder[] { new(8, 3000) }, new Payment[] { new(8, 3000) }, appended: true);
        });

        var orders = new Feed<PurchaseOrder>(node.Left);
        var payments = new Feed<Payment>(node.Right);
        var clock = new Clock { Previous = 3000, Current = 20_000 };
        var upgraded = new StreamJoinExecutor<long, PurchaseOrder, Payment, string>(node, orders, payments, clock);
        var reader = new MessagePackReader(oldSnapshot);
        upgraded.RestoreSnapshot(ref reader, node.Version);
        reader = new MessagePackReader(oldDelta);
        upgraded.ApplyDelta(ref reader, node.Version);
        Assert.Equal(2, upgraded.KeyCount);

        // Order 7 arrives after the upgrade and matches the kept payment; then the watermark passes everything
        // but order 9.
        orders.Output.Add(new PurchaseOrder(7, 4500));
        orders.Output.Add(new PurchaseOrder(9, 20_000));
        upgraded.Execute(new BatchContext(1, 1));
        Assert.Equal(new[] { "7@4500->5000" }, upgraded.Output);
        Assert.Equal(1, upgraded.KeyCount);

        // The new build's delta of that batch, applied to the same restored state, ends in the same state.
        byte[] delta = Bytes(w => upgraded.WriteDelta(w, 1));
        var restarted = new StreamJoinExecutor<long, PurchaseOrder, Payment, string>(node, orders, payments, new Clock { Previous = 20_000, Current = 20_000 });
        foreach (var bytes in new[] { oldSnapshot, oldDelta, delta })
        {
            reader = new MessagePackReader(bytes);
            if (bytes == oldSnapshot) restarted.RestoreSnapshot(ref reader, node.Version);
            else restarted.ApplyDelta(ref reader, node.Version);
        }

        Assert.Equal(Bytes(upgraded.WriteSnapshot), Bytes(restarted.WriteSnapshot));
        Assert.Equal(1, restarted.KeyCount);
    }

    private sealed class Feed<T> : OperatorExecutor<T>
    {
        public Feed(OperatorNode node) : base(node) { }

        public override void Execute(BatchContext batch) { }
    }

    private sealed class Clock : IWatermark
    {
        public long Previous { get; set; }

        public long Current { get; set; }
    }

    private static byte[] Bytes(Action<MessagePackWriter> write)
    {
        var w = new MessagePackWriter();
        write(w);
        return w.ToArray();
    }

    [Fact]
    public void Hopping_windows_restored_from_the_whole_window_state_of_an_older_build_count_every_record_once()
    {
        // Builds before panes kept a hopping window's whole result per window start. Such state is restored as
        // legacy windows, combined with the panes of the records seen after the upgrade when each window fires.
        var node = (EventTimeWindowNode<string, Reading>)EventTimePipeline.Definition.Operators.Single(o => o.Id == "hopping");
        void Entry(MessagePackWriter w, long start, long value)
        {
            w.WriteArrayHeader(2);
            w.Write(start);
            w.WriteArrayHeader(1);
            w.WriteArrayHeader(2);
            node.KeyFormatter.Serialize(w, "a");
            node.ValueFormatter.Serialize(w, new Reading("a", start, value));
        }

        // The old snapshot: windows [0,1000) = 5 and [500,1500) = 7; then an old delta: [500,1500) became 9,
        // [1000,2000) opened with 2, and [0,1000) fired.
        byte[] oldSnapshot = Bytes(w => { w.WriteArrayHeader(2); Entry(w, 0, 5); Entry(w, 500, 7); });
        byte[] oldDelta = Bytes(w =>
        {
            w.WriteMapHeader(2);
            w.Write(0L);
            w.WriteArrayHeader(2);
            Entry(w, 500, 9);
            Entry(w, 1000, 2);
            w.Write(1L);
            w.WriteArrayHeader(1);
            w.Write(0L);
        });

        var clock = new Clock { Previous = 900, Current = 1600 };
        var feed = new Feed<Reading>(node.Input);
        var upgraded = new EventTimeWindowExecutor<string, Reading>(node, feed, clock);
        var reader = new MessagePackReader(oldSnapshot);
        upgraded.RestoreSnapshot(ref reader, node.Version);
        reader = new MessagePackReader(oldDelta);
        upgraded.ApplyDelta(ref reader, node.Version);

        // After the upgrade: 10 at 1200 (in [500,1500) and [1000,2000)); the watermark reaches 1600.
        feed.Output.Add(new Reading("a", 1200, 10));
        upgraded.Execute(new BatchContext(1, 1));
        Assert.Equal(new[] { "a[500,1500)=19" }, upgraded.Output.Select(Show));

        // The new build's own snapshot keeps what is left of the legacy window, and a restart restores it.
        byte[] snapshot = Bytes(upgraded.WriteSnapshot);
        var restarted = new EventTimeWindowExecutor<string, Reading>(node, feed, new Clock { Previous = 1600, Current = 2100 });
        reader = new MessagePackReader(snapshot);
        restarted.RestoreSnapshot(ref reader, node.Version);
        feed.Output.Clear();
        restarted.Execute(new BatchContext(2, 1));
        Assert.Equal(new[] { "a[1000,2000)=12" }, restarted.Output.Select(Show));
        Assert.Equal(0, restarted.KeyCount);
    }
}
