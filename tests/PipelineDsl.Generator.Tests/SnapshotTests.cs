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
    public void Event_time_operators_watermark_windows_sessions_and_an_interval_join()
    {
        const string source = """
            using PipelineDsl;

            namespace Demo.EventTime;

            [StateContract]
            public sealed partial record Reading([property: Field(0)] string Sensor, [property: Field(1)] long Time, [property: Field(2)] long Value);

            [StateContract]
            public sealed partial record Payment([property: Field(0)] string Sensor, [property: Field(1)] long Time);

            [Pipeline("event-time")]
            public static partial class Sensors
            {
                [Source("readings")]
                public static partial Source<Reading> Readings();

                [Source("payments")]
                public static partial Source<Payment> Payments();

                [Watermark("timed", From = "readings", Time = nameof(Reading.Time), MaxOutOfOrdernessMs = 1000)]
                public static partial Stream<Reading> Timed();

                [Watermark("timed-payments", From = "payments", Time = nameof(Payment.Time))]
                public static partial Stream<Payment> TimedPayments();

                [EventTimeWindow("tumbling", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), SizeMs = 1000)]
                public static Reading Sum(Reading a, Reading b) => a with { Value = a.Value + b.Value };

                [EventTimeWindow("hopping", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), SizeMs = 1000, SlideMs = 500)]
                public static Reading HopSum(Reading a, Reading b) => a with { Value = a.Value + b.Value };

                [SessionWindow("sessions", From = "timed", Key = nameof(Reading.Sensor), Time = nameof(Reading.Time), GapMs = 500)]
                public static Reading Session(Reading a, Reading b) => a with { Value = a.Value + b.Value };

                [StreamJoin("paid", Left = "timed", Right = "timed-payments", LeftKey = nameof(Reading.Sensor), RightKey = nameof(Payment.Sensor),
                    LeftTime = nameof(Reading.Time), RightTime = nameof(Payment.Time), LowerBoundMs = 0, UpperBoundMs = 1000)]
                public static string Paid(Reading r, Payment p) => r.Sensor + "@" + p.Time;

                [Sink("tumbling-out", From = "tumbling")]
                public static partial Sink<EventWindow<string, Reading>> TumblingOut();

                [Sink("hopping-out", From = "hopping")]
                public static partial Sink<EventWindow<string, Reading>> HoppingOut();

                [Sink("sessions-out", From = "sessions")]
                public static partial Sink<EventWindow<string, Reading>> SessionsOut();

                [Sink("paid-out", From = "paid")]
                public static partial Sink<string> PaidOut();
            }
            """;
        var result = GeneratorHarness.Run(source);
        Assert.Empty(result.Errors);
        Snapshot.Verify(result.Source("Demo.EventTime.Sensors.Pipeline.g.cs"), "EventTime.Pipeline");
    }

    [Fact]
    public void A_map_that_takes_the_batch_time()
    {
        const string source = """
            using PipelineDsl;

            namespace Demo.ProcessingTime;

            public readonly record struct Stamped(string Line, long At);

            [Pipeline("processing-time")]
            public static partial class Stamps
            {
                [Source("lines")]
                public static partial Source<string> Lines();

                [Map("stamped", From = "lines")]
                public static Stamped Stamp(string line, BatchTime time) => new(line, time.UnixMilliseconds);

                [Map("plain", From = "stamped")]
                public static string Plain(Stamped s) => s.Line + "@" + s.At;

                [Sink("out", From = "plain")]
                public static partial Sink<string> Out();
            }
            """;
        var result = GeneratorHarness.Run(source);
        Assert.Empty(result.Errors);
        Snapshot.Verify(result.Source("Demo.ProcessingTime.Stamps.Pipeline.g.cs"), "ProcessingTime.Pipeline");
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
    public void Pipeline_with_migrations_discards_and_a_retired_operator()
    {
        const string source = """
            using PipelineDsl;

            namespace Upgrades;

            public sealed record Hit(string User, long Value);

            [StateContract] public partial class TallyV1 { [Field(0)] public long Count { get; set; } }
            [StateContract] public partial class TallyV2 { [Field(0)] public long Count { get; set; } [Field(1)] public long Sum { get; set; } }
            [StateContract] public partial record struct Tally([property: Field(0)] long Count, [property: Field(2)] double Mean);
            [StateContract] public sealed partial record Seen([property: Field(0)] string User, [property: Field(1)] long N);

            [Pipeline("upgrade-demo")]
            [RetiredOperator("old-source")]
            [RetiredOperator("legacy-totals")]
            [DiscardState("recent", FromVersion = 1)]
            public static partial class Up
            {
                [Source("hits")] public static partial Source<Hit> Hits();

                [UpdateState("tally", From = "hits", Key = nameof(Hit.User), Version = 3)]
                public static double Mean(string user, Hit h, KeyedState<Tally> s) => 0;

                [StateMigration("tally", FromVersion = 1)]
                public static TallyV2 FromV1(TallyV1 old) => new() { Count = old.Count };

                [StateMigration("tally", FromVersion = 2)]
                public static Tally FromV2(TallyV2 old) => new(old.Count, 0);

                [Map("seen", From = "hits")]
                public static Seen ToSeen(Hit h) => new(h.User, 1);

                [Window("recent", From = "seen", Key = nameof(Seen.User), LengthBatches = 4, Version = 2)]
                public static Seen Merge(Seen a, Seen b) => new(a.User, a.N + b.N);

                [Sink("recent-out", From = "recent")] public static partial Sink<Windowed<string, Seen>> RecentOut();

                [Sink("out", From = "tally")] public static partial Sink<double> Out();
            }
            """;
        var result = GeneratorHarness.Run(source);
        Assert.Empty(result.Errors.Select(e => e.ToString()));
        Snapshot.Verify(result.Source("Upgrades.Up.Pipeline.g.cs"), "Upgrade.Pipeline");
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
