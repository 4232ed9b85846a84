using PipelineDsl.Checkpointing;
using Xunit.Abstractions;

namespace PipelineDsl.Testing.Tests;

public sealed record Click(string User, long AtMs);

public sealed record Total(string User, long Clicks);

[StateContract]
public partial record struct Seen([property: Field(0)] long Clicks);

/// <summary>Clicks per user, forgotten after three batches without one: the kit's own test pipeline.</summary>
[Pipeline("kit-clicks")]
public static partial class KitClicks
{
    [Source("clicks")]
    public static partial Source<Click> Clicks();

    [UpdateState("per-user", From = "clicks", Key = nameof(Click.User), IdleTimeoutBatches = 3)]
    public static Total PerUser(string user, Click click, KeyedState<Seen> state)
    {
        state.Update(new Seen(state.Value.Clicks + 1));
        return new Total(user, state.Value.Clicks);
    }

    [Sink("totals", From = "per-user")]
    public static partial Sink<Total> Totals();
}

/// <summary>The test driver on a real generated pipeline: one batch per call, outputs per batch, idle expiry by batches, clean restarts, crashes at every batch, bad records, and runs that are byte-identical.</summary>
public class PipelineTestDriverTests(ITestOutputHelper log)
{
    private static (PipelineTestDriver Driver, TestInput<Click> In, TestOutput<Total> Out) Start(PipelineTestOptions? options = null)
    {
        var driver = new PipelineTestDriver(KitClicks.Definition, options);
        return (driver, driver.Input(KitClicks.Clicks()), driver.Output(KitClicks.Totals()));
    }

    [Fact]
    public void Each_call_runs_one_batch_over_what_was_added_and_its_output_is_read_by_batch()
    {
        var (driver, input, output) = Start();
        using var _ = driver;
        input.Add(new Click("a", 1), new Click("b", 2), new Click("a", 3));
        var first = driver.RunBatch();
        Assert.Equal(0, first.BatchId);
        Assert.Equal(3, first.InputRecords);
        Assert.Equal(new[] { new Total("a", 1), new Total("b", 1), new Total("a", 2) }, output.Batch(0));

        input.Add(new Click("b", 4));
        var second = driver.RunBatch();
        Assert.Equal(1, second.BatchId);
        Assert.Equal(new[] { new Total("b", 2) }, output.Batch(1));

        // A batch runs even with nothing new: the test decides how many batches pass.
        var empty = driver.RunBatch();
        Assert.Equal((2L, 0L), (empty.BatchId, empty.InputRecords));
        Assert.Empty(output.Batch(2));
        Assert.Equal(4, output.All.Count);
    }

    [Fact]
    public void State_idle_for_its_timeout_in_batches_is_forgotten_exactly_then()
    {
        var (driver, input, output) = Start();
        using var _ = driver;
        input.Add(new Click("a", 1), new Click("idle", 1));
        driver.RunBatch(); // batch 0: both seen
        input.Add(new Click("a", 2));
        driver.RunBatch(); // 1
        input.Add(new Click("a", 3));
        driver.RunBatch(); // 2: "idle" has not been seen for two batches: still kept
        input.Add(new Click("idle", 2));
        driver.RunBatch(); // 3: seen again within its timeout: its count goes on
        Assert.Equal(new Total("idle", 2), output.Batch(3).Single());

        driver.RunBatches(2); // 4, 5: two batches without "idle"
        input.Add(new Click("idle", 3));
        driver.RunBatch(); // 6: still within its timeout
        Assert.Equal(new Total("idle", 3), output.Batch(6).Single());

        driver.RunBatches(3); // 7, 8, 9: three batches without "idle": its state is removed
        input.Add(new Click("idle", 4));
        driver.RunBatch(); // 10: it starts over
        Assert.Equal(new Total("idle", 1), output.Batch(10).Single());
    }

    [Fact]
    public void The_clock_moves_only_when_the_test_moves_it()
    {
        var start = new DateTimeOffset(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);
        var (driver, _, _) = Start(new PipelineTestOptions { StartTime = start });
        using var __ = driver;
        Assert.Equal(start, driver.RunBatch().PlannedAt);
        Assert.Equal(start, driver.RunBatch().PlannedAt);
        driver.AdvanceTime(TimeSpan.FromMinutes(5));
        Assert.Equal(start.AddMinutes(5), driver.RunBatch().PlannedAt);
        Assert.Throws<ArgumentOutOfRangeException>(() => driver.AdvanceTime(TimeSpan.FromSeconds(-1)));
    }

    [Fact]
    public void A_clean_restart_resumes_from_its_final_snapshot_and_a_crash_from_the_commits_after_the_last_snapshot()
    {
        var (driver, input, output) = Start(new PipelineTestOptions { CheckpointInterval = 4 });
        using var _ = driver;
        for (int b = 0; b < 6; b++)
        {
            input.Add(new Click("a", b));
            driver.RunBatch();
        }

        Assert.Equal(new RecoveryProgress(false, null, 0, 0, -1, TimeSpan.Zero, false), driver.LastRecovery! with { Duration = TimeSpan.Zero });

        // A crash after batch 5: the snapshot of batch 3 plus the deltas of batches 4 and 5.
        driver.CrashAndRestore();
        input.Add(new Click("a", 6));
        driver.RunBatch();
        var crash = driver.LastRecovery!;
        Assert.True(crash.Restored);
        Assert.Equal((3L, 2L, 5L), (crash.FromSnapshotBatch!.Value, crash.BatchesFromDeltas, crash.LastCommittedBatch));
        Assert.Equal(new Total("a", 7), output.Batch(6).Single());

        // A clean stop after batch 6 writes its snapshot: the restart needs no delta.
        driver.Restart();
        input.Add(new Click("a", 7));
        driver.RunBatch();
        Assert.Equal((6L, 0L), (driver.LastRecovery!.FromSnapshotBatch!.Value, driver.LastRecovery.BatchesFromDeltas));
        Assert.Equal(new Total("a", 8), output.Batch(7).Single());
    }

    /// <summary>Twelve batches of seeded random clicks; <paramref name="crashAfter"/> (if any) crashes and restores after that batch.</summary>
    private static (IReadOnlyDictionary<long, IReadOnlyList<Total>> Output, SortedDictionary<string, byte[]> Checkpoint) Script(int seed, int? crashAfter)
    {
        var random = new Random(seed);
        var (driver, input, output) = Start(new PipelineTestOptions { CheckpointInterval = 5 });
        using (driver)
        {
            for (int b = 0; b < 12; b++)
            {
                int n = random.Next(0, 8);
                for (int i = 0; i < n; i++) input.Add(new Click("u" + random.Next(6), b * 100 + i));
                driver.AdvanceTime(TimeSpan.FromMilliseconds(random.Next(1, 1000)));
                driver.RunBatch();
                if (b == crashAfter) driver.CrashAndRestore();
            }

            driver.Restart();
            return (output.Batches, Files(driver.Checkpoint));
        }
    }

    private static SortedDictionary<string, byte[]> Files(ICheckpointStore store)
    {
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (string folder in new[] { "", "offsets", "commits", "state", "dead-letter" })
        {
            var names = folder.Length == 0 ? new[] { "metadata" } : store.ListAsync(folder, default).GetAwaiter().GetResult().ToArray();
            foreach (string name in names)
                if (store.ReadAsync(name, default).GetAwaiter().GetResult() is { } bytes) files[name] = bytes;
        }

        return files;
    }

    [Fact]
    public void A_crash_after_any_batch_gives_exactly_the_output_of_a_run_without_one()
    {
        int seed = TestRandom.Create(2026_12_02, log, "the clicks").Next();
        var expected = Script(seed, crashAfter: null).Output;
        Assert.Equal(12, expected.Count);
        for (int crash = 0; crash < 12; crash++)
        {
            var actual = Script(seed, crash).Output;
            Assert.Equal(expected.Keys, actual.Keys);
            foreach (var (batch, records) in expected) Assert.True(records.SequenceEqual(actual[batch]), $"crash after batch {crash}: batch {batch} differs");
        }
    }

    [Fact]
    public void The_same_inputs_give_byte_identical_outputs_and_checkpoint_files_on_every_run()
    {
        int seed = TestRandom.Create(7, log, "the clicks").Next();
        var first = Script(seed, crashAfter: 7);
        var second = Script(seed, crashAfter: 7);
        Assert.True(first.Checkpoint.Count > 20, $"only {first.Checkpoint.Count} checkpoint files");
        Assert.Equal(first.Checkpoint.Keys, second.Checkpoint.Keys);
        foreach (var (name, bytes) in first.Checkpoint) Assert.True(bytes.AsSpan().SequenceEqual(second.Checkpoint[name]), $"checkpoint file '{name}' differs between two runs");
        Assert.Equal(first.Output.Keys, second.Output.Keys);
        foreach (var (batch, records) in first.Output) Assert.Equal(records, second.Output[batch]);
    }

    [Fact]
    public void A_bad_record_fails_its_batch_by_default_and_is_set_aside_under_the_dead_letter_policy()
    {
        var (failing, badInput, _) = Start();
        using (failing)
        {
            badInput.Add(new Click("a", 1)).AddBadRecord("not a click");
            var e = Assert.ThrowsAny<Exception>(() => failing.RunBatch());
            Assert.Contains("not a click", e.ToString());
        }

        var (driver, input, output) = Start(new PipelineTestOptions { BadRecordPolicy = BadRecordPolicy.DeadLetter });
        using var _ = driver;
        input.Add(new Click("a", 1)).AddBadRecord("not a click").Add(new Click("a", 2));
        driver.RunBatch();
        Assert.Equal(new[] { new Total("a", 1), new Total("a", 2) }, output.All);
        var letter = Assert.Single(driver.DeadLetters);
        Assert.Contains("not a click", letter);
        Assert.Contains("\"source\":\"clicks\"", letter);
    }

    [Fact]
    public void Binding_mistakes_are_clear_errors()
    {
        var driver = new PipelineTestDriver(KitClicks.Definition);
        using var _ = driver;
        driver.Input(KitClicks.Clicks());
        Assert.Contains("bound already", Assert.Throws<InvalidOperationException>(() => driver.Input(KitClicks.Clicks())).Message);
        var unbound = Assert.Throws<InvalidOperationException>(() => driver.RunBatch());
        Assert.Contains("sink 'totals'", unbound.Message);
    }
}

/// <summary>A click stamped with the processing time of the batch that read it.</summary>
[StateContract]
public sealed partial record StampedClick([property: Field(0)] string User, [property: Field(1)] long Count, [property: Field(2)] long ProcessedAt);

/// <summary>Clicks per user in tumbling one-minute windows of processing time (the batch time), as Nexmark q12 counts bids.</summary>
[Pipeline("kit-processing-time")]
public static partial class KitProcessingTime
{
    [Source("clicks")]
    public static partial Source<Click> Clicks();

    [Map("stamped", From = "clicks")]
    public static StampedClick Stamp(Click c, BatchTime time) => new(c.User, 1, time.UnixMilliseconds);

    [Watermark("processing-time", From = "stamped", Time = nameof(StampedClick.ProcessedAt), MaxOutOfOrdernessMs = 0)]
    public static partial Stream<StampedClick> ProcessingTime();

    [EventTimeWindow("per-minute", From = "processing-time", Key = nameof(StampedClick.User), Time = nameof(StampedClick.ProcessedAt), SizeMs = 60_000)]
    public static StampedClick Count(StampedClick a, StampedClick b) => a with { Count = a.Count + b.Count };

    [Sink("counts", From = "per-minute")]
    public static partial Sink<EventWindow<string, StampedClick>> Counts();
}

/// <summary>Processing time under the test's control: the batch time is the driver's clock, windows of it fire when the test moves it past their end.</summary>
public class ProcessingTimeTests
{
    [Fact]
    public void Windows_of_processing_time_fire_when_the_test_moves_the_clock_past_their_end_and_survive_a_crash()
    {
        var start = new DateTimeOffset(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);
        using var driver = new PipelineTestDriver(KitProcessingTime.Definition, new PipelineTestOptions { StartTime = start });
        var input = driver.Input(KitProcessingTime.Clicks());
        var output = driver.Output(KitProcessingTime.Counts());
        string Row(EventWindow<string, StampedClick> w) => $"{w.Key} {w.Value.Count} {DateTimeOffset.FromUnixTimeMilliseconds(w.Start):HH:mm:ss}-{DateTimeOffset.FromUnixTimeMilliseconds(w.End):HH:mm:ss}";

        input.Add(new Click("a", 0), new Click("b", 0));
        driver.RunBatch(); // 12:00:00
        driver.AdvanceTime(TimeSpan.FromSeconds(30));
        input.Add(new Click("a", 0));
        driver.RunBatch(); // 12:00:30, same window
        Assert.Empty(output.All);

        driver.CrashAndRestore(); // the open window's counts are in the checkpoint, not lost
        driver.AdvanceTime(TimeSpan.FromSeconds(40));
        input.Add(new Click("a", 0));
        driver.RunBatch(); // 12:01:10: the watermark passes 12:01:00, the first window fires
        Assert.Equal(new[] { "a 2 12:00:00-12:01:00", "b 1 12:00:00-12:01:00" }, output.All.Select(Row).Order());

        driver.AdvanceTime(TimeSpan.FromMinutes(1));
        driver.RunBatch(); // 12:02:10, but no record carried the new time: the watermark moves with records
        Assert.Equal(2, output.All.Count);
        input.Add(new Click("c", 0));
        driver.RunBatch();
        Assert.Contains("a 1 12:01:00-12:02:00", output.All.Select(Row));
    }
}

[StateContract]
public sealed partial record KitOrder([property: Field(0)] string Id, [property: Field(1)] long Time);

[StateContract]
public sealed partial record KitPayment([property: Field(0)] string OrderId, [property: Field(1)] long Time);

/// <summary>Orders paid within a second (an interval stream join): what the join keeps is readable by key.</summary>
[Pipeline("kit-payments")]
public static partial class KitPayments
{
    [Source("orders")]
    public static partial Source<KitOrder> Orders();

    [Source("payments")]
    public static partial Source<KitPayment> Payments();

    [Watermark("timed-orders", From = "orders", Time = nameof(KitOrder.Time))]
    public static partial Stream<KitOrder> TimedOrders();

    [Watermark("timed-payments", From = "payments", Time = nameof(KitPayment.Time))]
    public static partial Stream<KitPayment> TimedPayments();

    [StreamJoin("paid", Left = "timed-orders", Right = "timed-payments", LeftKey = nameof(KitOrder.Id), RightKey = nameof(KitPayment.OrderId),
        LeftTime = nameof(KitOrder.Time), RightTime = nameof(KitPayment.Time), LowerBoundMs = 0, UpperBoundMs = 1000)]
    public static string Paid(KitOrder o, KitPayment p) => $"{o.Id} paid at {p.Time}";

    [Sink("out", From = "paid")]
    public static partial Sink<string> Out();
}

/// <summary>A stream join's state read by key: what it keeps, what expiry removed, the same after a crash, and clear errors for the wrong call.</summary>
public class JoinStateTests
{
    private static string Describe(IReadOnlyDictionary<string, JoinState<KitOrder, KitPayment>> state) =>
        string.Join(" ", state.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p =>
            $"{p.Key}:[{string.Join(",", p.Value.Left.Select(o => o.Time))}|{string.Join(",", p.Value.Right.Select(x => x.Time))}]"));

    [Fact]
    public void The_records_a_join_keeps_are_read_by_key_and_expire_once_no_match_can_come()
    {
        using var driver = new PipelineTestDriver(KitPayments.Definition);
        var orders = driver.Input(KitPayments.Orders());
        var payments = driver.Input(KitPayments.Payments());
        var output = driver.Output(KitPayments.Out());

        orders.Add(new KitOrder("a", 1_000), new KitOrder("b", 1_500));
        payments.Add(new KitPayment("a", 1_200), new KitPayment("b", 1_400)); // b's payment came before its order: no match
        driver.RunBatch();
        Assert.Equal(new[] { "a paid at 1200" }, output.All);
        // The watermark is 1,400 (the lower of the inputs' latest times): a payment expires at its own time (no later
        // order can match it), so a's payment (1,200) is gone; the orders match payments up to 1,000 later and stay.
        Assert.Equal("a:[1000|] b:[1500|1400]", Describe(driver.JoinStateOf<string, KitOrder, KitPayment>("paid")));

        orders.Add(new KitOrder("c", 2_300));
        payments.Add(new KitPayment("c", 2_400));
        driver.RunBatch();
        // Watermark 2,300: order a (matchable until 2,000) and b's early payment are gone, order b (until 2,500) is kept.
        Assert.Equal("b:[1500|] c:[2300|2400]", Describe(driver.JoinStateOf<string, KitOrder, KitPayment>("paid")));

        driver.CrashAndRestore();
        Assert.Equal("b:[1500|] c:[2300|2400]", Describe(driver.JoinStateOf<string, KitOrder, KitPayment>("paid")));
        payments.Add(new KitPayment("b", 2_450));
        driver.RunBatch();
        Assert.Equal(new[] { "a paid at 1200", "c paid at 2400", "b paid at 2450" }, output.All);
    }

    [Fact]
    public void Reading_a_join_with_the_wrong_call_or_types_says_which_to_use()
    {
        using var driver = new PipelineTestDriver(KitPayments.Definition);
        driver.Input(KitPayments.Orders()).Add(new KitOrder("a", 1));
        driver.Input(KitPayments.Payments());
        driver.Output(KitPayments.Out());
        driver.RunBatch();
        Assert.Contains("JoinStateOf<String, KitOrder, KitPayment>", Assert.Throws<ArgumentException>(() => driver.StateOf<string, long>("paid")).Message);
        Assert.Contains("JoinStateOf<String, KitOrder, KitPayment>", Assert.Throws<ArgumentException>(() => driver.JoinStateOf<string, KitPayment, KitOrder>("paid")).Message);
        Assert.Contains("is not a [StreamJoin] operator", Assert.Throws<ArgumentException>(() => driver.JoinStateOf<string, KitOrder, KitPayment>("timed-orders")).Message);
        Assert.Contains("has no operator 'nope'", Assert.Throws<ArgumentException>(() => driver.JoinStateOf<string, KitOrder, KitPayment>("nope")).Message);
    }
}
