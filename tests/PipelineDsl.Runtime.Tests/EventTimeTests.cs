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

/// <summary>
/// Watermarks, event-time windows, sessions and interval joins, batch by batch: each RunAsync below is one
/// batch on a new runner restored from the checkpoint, so every step also proves the state survives a restart.
/// </summary>
public class EventTimeTests
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
}
