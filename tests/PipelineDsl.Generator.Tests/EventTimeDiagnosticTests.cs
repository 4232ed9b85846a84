using Microsoft.CodeAnalysis;
using static PipelineDsl.Generator.Tests.DiagnosticAssert;

namespace PipelineDsl.Generator.Tests;

/// <summary>The diagnostics of the event-time operators: watermarks, event-time and session windows, stream joins.</summary>
public class EventTimeDiagnosticTests
{
    private const string States = """
            [Source("states")]
            public static partial Source<UserState> States();

        """;

    [Fact]
    public void PDSL029_watermark_time_is_not_a_long() => Single(InPipeline("""
            [Watermark("wm", From = "clicks", [|Time = nameof(Click.Url)|], MaxOutOfOrdernessMs = 10)]
            public static partial Stream<Click> Timed();

            [Sink("out", From = "wm")]
            public static partial Sink<Click> Out();
        """), "PDSL029", "Time of 'wm' must name a long property or field of 'Demo.Click' holding Unix milliseconds ('Url' is a string)");

    [Fact]
    public void PDSL029_window_time_missing() => Single(InPipeline(States + """
            [Watermark("wm", From = "states", Time = nameof(UserState.LastSeenMs))]
            public static partial Stream<UserState> Timed();

            [[|EventTimeWindow("w", From = "wm", Key = nameof(UserState.Clicks), SizeMs = 1000)|]]
            public static UserState W(UserState a, UserState b) => a;
        """), "PDSL029", "Time of 'w' must name a long property or field of 'Demo.UserState' holding Unix milliseconds: set Time = nameof(...)");

    [Fact]
    public void PDSL030_window_without_size() => Single(InPipeline(States + """
            [Watermark("wm", From = "states", Time = nameof(UserState.LastSeenMs))]
            public static partial Stream<UserState> Timed();

            [EventTimeWindow("w", From = "wm", Key = nameof(UserState.Clicks), Time = nameof(UserState.LastSeenMs), [|SizeMs = 0|])]
            public static UserState W(UserState a, UserState b) => a;
        """), "PDSL030", "The window 'w' has SizeMs = 0: set SizeMs to the window length, 1 ms or more");

    [Fact]
    public void PDSL030_slide_above_size() => Single(InPipeline(States + """
            [Watermark("wm", From = "states", Time = nameof(UserState.LastSeenMs))]
            public static partial Stream<UserState> Timed();

            [EventTimeWindow("w", From = "wm", Key = nameof(UserState.Clicks), Time = nameof(UserState.LastSeenMs), [|SizeMs = 1000|], SlideMs = 2000)]
            public static UserState W(UserState a, UserState b) => a;
        """), "PDSL030", "The window 'w' has SlideMs = 2000: it must be between 1 and SizeMs, or 0 for tumbling windows");

    [Fact]
    public void PDSL030_session_without_gap() => Single(InPipeline(States + """
            [Watermark("wm", From = "states", Time = nameof(UserState.LastSeenMs))]
            public static partial Stream<UserState> Timed();

            [SessionWindow("s", From = "wm", Key = nameof(UserState.Clicks), Time = nameof(UserState.LastSeenMs), [|GapMs = -5|])]
            public static UserState S(UserState a, UserState b) => a;
        """), "PDSL030", "The window 's' has GapMs = -5: set GapMs to the inactivity gap, 1 ms or more");

    [Fact]
    public void PDSL031_join_with_one_time() => Single(InPipeline(States + """
            [[|StreamJoin("j", Left = "states", Right = "states", LeftKey = nameof(UserState.Clicks), RightKey = nameof(UserState.Clicks), LeftTime = nameof(UserState.LastSeenMs))|]]
            public static long J(UserState a, UserState b) => a.Clicks;
        """), "PDSL031", "The stream join 'j' sets only one of LeftTime and RightTime: set both for an interval join, or neither for an unbounded join");

    [Fact]
    public void PDSL031_join_bounds_without_times() => Single(InPipeline(States + """
            [[|StreamJoin("j", Left = "states", Right = "states", LeftKey = nameof(UserState.Clicks), RightKey = nameof(UserState.Clicks), UpperBoundMs = 5)|]]
            public static long J(UserState a, UserState b) => a.Clicks;
        """), "PDSL031", "The stream join 'j' sets LeftEndTime or bounds without LeftTime and RightTime: set both times, or remove the bounds");

    [Fact]
    public void PDSL110_window_without_watermark() => Single(InPipeline(States + """
            [EventTimeWindow("w", From = "states", Key = nameof(UserState.Clicks), Time = nameof(UserState.LastSeenMs), SizeMs = 1000)]
            public static UserState [|W|](UserState a, UserState b) => a;
        """), "PDSL110", "'w' works in event time, but its input from source 'states' passes no [Watermark] stage: declare one between 'states' and 'w' so that it knows when windows are complete");

    [Fact]
    public void An_event_time_pipeline_compiles_and_records_its_settings_in_the_manifest()
    {
        var result = GeneratorHarness.Run(GeneratorHarness.Compilation((TestPipelines.Records, "Records.cs"), (InPipeline(States + """
                [Watermark("wm", From = "states", Time = nameof(UserState.LastSeenMs), MaxOutOfOrdernessMs = 4000)]
                public static partial Stream<UserState> Timed();

                [EventTimeWindow("hop", From = "wm", Key = nameof(UserState.Clicks), Time = nameof(UserState.LastSeenMs), SizeMs = 10000, SlideMs = 2000)]
                public static UserState Hop(UserState a, UserState b) => a;

                [SessionWindow("session", From = "wm", Key = nameof(UserState.Clicks), Time = nameof(UserState.LastSeenMs), GapMs = 500)]
                public static UserState Session(UserState a, UserState b) => b;

                [StreamJoin("join", Left = "wm", Right = "wm", LeftKey = nameof(UserState.Clicks), RightKey = nameof(UserState.Clicks),
                    LeftTime = nameof(UserState.LastSeenMs), RightTime = nameof(UserState.LastSeenMs), LowerBoundMs = -10, UpperBoundMs = 10)]
                public static UserState? Join(UserState a, UserState b) => null;

                [ForEachBatch("out-hop", From = "hop")] public static void OutHop(long batch, IReadOnlyList<EventWindow<long, UserState>> rows) { }
                [ForEachBatch("out-session", From = "session")] public static void OutSession(long batch, IReadOnlyList<EventWindow<long, UserState>> rows) { }
                [ForEachBatch("out-join", From = "join")] public static void OutJoin(long batch, IReadOnlyList<UserState?> rows) { }
                [ForEachBatch("out-clicks", From = "clicks")] public static void OutClicks(long batch, IReadOnlyList<Click> rows) { }
            """), "P.cs")));
        Assert.Empty(result.GeneratorDiagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning));
        Assert.Empty(result.CompileDiagnostics);
        string generated = string.Join("\n", result.Sources.Values);
        Assert.Contains("\"kind\": \"event-time-window\"", generated.Replace("\"\"", "\""));
        Assert.Contains("\"sizeMs\": 10000", generated.Replace("\"\"", "\""));
        Assert.Contains("\"kind\": \"session-window\"", generated.Replace("\"\"", "\""));
        Assert.Contains("\"kind\": \"stream-join\"", generated.Replace("\"\"", "\""));
        Assert.Contains("\"lowerBoundMs\": -10", generated.Replace("\"\"", "\""));
        Assert.Contains("builder.Watermark<", generated);
    }
}
