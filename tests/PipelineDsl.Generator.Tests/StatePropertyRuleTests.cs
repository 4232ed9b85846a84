using Microsoft.CodeAnalysis;

namespace PipelineDsl.Generator.Tests;

/// <summary>
/// Every property a manifest entry records about a stateful operator has a rule: changing a guarded one at the
/// same version is PDSL209 (re-keying by another member of the same type PDSL210); a safe one is silent; a
/// version bump with [DiscardState] makes any of them legal.
/// </summary>
public class StatePropertyRuleTests
{
    private const string EventTime = """
        using PipelineDsl;

        namespace Demo.Timed;

        [StateContract]
        public sealed partial record Order([property: Field(0)] string Customer, [property: Field(1)] string Region, [property: Field(2)] long Time, [property: Field(3)] long Amount);

        [StateContract]
        public sealed partial record Payment([property: Field(0)] string Customer, [property: Field(1)] long Time);

        [Pipeline("timed")]
        public static partial class Timed
        {
            [Source("orders")]
            public static partial Source<Order> Orders();

            [Source("payments")]
            public static partial Source<Payment> Payments();

            [Watermark("timed-orders", From = "orders", Time = nameof(Order.Time), MaxOutOfOrdernessMs = 1000)]
            public static partial Stream<Order> TimedOrders();

            [Watermark("timed-payments", From = "payments", Time = nameof(Payment.Time), MaxOutOfOrdernessMs = 1000)]
            public static partial Stream<Payment> TimedPayments();

            [EventTimeWindow("per-minute", From = "timed-orders", Key = nameof(Order.Customer), Time = nameof(Order.Time), SizeMs = 60000, SlideMs = 0)]
            public static Order Sum(Order a, Order b) => a with { Amount = a.Amount + b.Amount };

            [SessionWindow("visits", From = "timed-orders", Key = nameof(Order.Customer), Time = nameof(Order.Time), GapMs = 30000)]
            public static Order Visit(Order a, Order b) => a with { Amount = a.Amount + b.Amount };

            [StreamJoin("paid", Left = "timed-orders", Right = "timed-payments", LeftKey = nameof(Order.Customer), RightKey = nameof(Payment.Customer),
                LeftTime = nameof(Order.Time), RightTime = nameof(Payment.Time), LowerBoundMs = 0, UpperBoundMs = 60000)]
            public static string Paid(Order o, Payment p) => o.Customer;

            [Sink("minutes", From = "per-minute")]
            public static partial Sink<EventWindow<string, Order>> Minutes();

            [Sink("sessions", From = "visits")]
            public static partial Sink<EventWindow<string, Order>> Sessions();

            [Sink("paid-out", From = "paid")]
            public static partial Sink<string> PaidOut();
        }
        """;

    private static readonly string Lock = GeneratorHarness.LockFile(Manifests.Of((EventTime, "Timed.cs")));

    private static IReadOnlyList<Diagnostic> Compatibility(string pipeline)
    {
        Assert.NotEqual(EventTime, pipeline);
        var compilation = GeneratorHarness.Compilation((pipeline, "Timed.cs"));
        var result = GeneratorHarness.Run(compilation, GeneratorHarness.Driver(("/repo/pipelines.lock.json", Lock)));
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Severity == DiagnosticSeverity.Error && !d.Id.StartsWith("PDSL2", StringComparison.Ordinal));
        return result.GeneratorDiagnostics.Where(d => d.Id.StartsWith("PDSL2", StringComparison.Ordinal)).ToList();
    }

    private static string Message(Diagnostic d) => d.GetMessage(System.Globalization.CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("SizeMs = 60000, SlideMs = 0", "SizeMs = 120000, SlideMs = 0", "per-minute", "its sizeMs changed from 60000 to 120000")]
    [InlineData("SizeMs = 60000, SlideMs = 0", "SizeMs = 60000, SlideMs = 20000", "per-minute", "its slideMs changed from 60000 to 20000")]
    [InlineData("GapMs = 30000", "GapMs = 45000", "visits", "its gapMs changed from 30000 to 45000")]
    [InlineData("LowerBoundMs = 0, UpperBoundMs = 60000", "LowerBoundMs = 0, UpperBoundMs = 90000", "paid", "its upperBoundMs changed from 60000 to 90000")]
    [InlineData("LowerBoundMs = 0, UpperBoundMs = 60000", "LowerBoundMs = -5000, UpperBoundMs = 60000", "paid", "its lowerBoundMs changed from 0 to -5000")]
    public void PDSL209_a_guarded_property_changed_at_the_same_version(string before, string after, string id, string reason)
    {
        var d = Assert.Single(Compatibility(EventTime.Replace(before, after)));
        Assert.Equal("PDSL209", d.Id);
        Assert.StartsWith($"'{id}': {reason}:", Message(d));
        Assert.Contains($"Set Version = 2 and declare [DiscardState(\"{id}\", FromVersion = 1)]", Message(d));
    }

    [Fact]
    public void PDSL209_a_watermarks_time_member_changed()
    {
        string changed = EventTime.Replace("[property: Field(1)] long Time);", "[property: Field(1)] long Time, [property: Field(2)] long SentAt);")
            .Replace("[Watermark(\"timed-payments\", From = \"payments\", Time = nameof(Payment.Time)", "[Watermark(\"timed-payments\", From = \"payments\", Time = nameof(Payment.SentAt)");
        var d = Assert.Single(Compatibility(changed));
        Assert.Equal("PDSL209", d.Id);
        Assert.StartsWith("'timed-payments': its time changed from Time to SentAt:", Message(d));
    }

    [Fact]
    public void PDSL210_state_re_keyed_by_another_member_of_the_same_type()
    {
        var d = Assert.Single(Compatibility(EventTime.Replace(
            "[EventTimeWindow(\"per-minute\", From = \"timed-orders\", Key = nameof(Order.Customer)",
            "[EventTimeWindow(\"per-minute\", From = \"timed-orders\", Key = nameof(Order.Region)")));
        Assert.Equal("PDSL210", d.Id);
        Assert.StartsWith("'per-minute': it is keyed by Region instead of Customer (keyMember)", Message(d));
    }

    [Fact]
    public void PDSL210_an_update_state_re_keyed_by_another_string_member()
    {
        string lockFile = GeneratorHarness.LockFile(Manifests.Of((TestPipelines.Records, "Records.cs"), (TestPipelines.ClicksPerUser, "ClicksPerUser.cs")));
        string changed = TestPipelines.ClicksPerUser.Replace("Key = nameof(Click.UserId)", "Key = nameof(Click.Url)");
        Assert.NotEqual(TestPipelines.ClicksPerUser, changed);
        var compilation = GeneratorHarness.Compilation((TestPipelines.Records, "Records.cs"), (changed, "Test.cs"));
        var found = GeneratorHarness.Run(compilation, GeneratorHarness.Driver(("/repo/pipelines.lock.json", lockFile))).GeneratorDiagnostics
            .Where(d => d.Id.StartsWith("PDSL2", StringComparison.Ordinal)).ToList();
        var d = Assert.Single(found);
        Assert.Equal("PDSL210", d.Id);
        Assert.Contains("it is keyed by Url instead of UserId", Message(d));
    }

    [Theory]
    [InlineData("[Watermark(\"timed-orders\", From = \"orders\", Time = nameof(Order.Time), MaxOutOfOrdernessMs = 1000)]", "[Watermark(\"timed-orders\", From = \"orders\", Time = nameof(Order.Time), MaxOutOfOrdernessMs = 5000)]")]
    [InlineData("public static Order Sum(Order a, Order b) => a with { Amount = a.Amount + b.Amount };", "public static Order Sum(Order a, Order b) => a with { Amount = a.Amount + 2 * b.Amount };")]
    public void Safe_changes_of_event_time_operators_are_silent(string before, string after)
    {
        Assert.Empty(Compatibility(EventTime.Replace(before, after)).Select(Message));
    }

    [Fact]
    public void PDSL209_a_batch_windows_length_changed_and_an_idle_timeout_change_is_silent()
    {
        string lockFile = GeneratorHarness.LockFile(Manifests.Of((TestPipelines.EveryKind, "Everything.cs")));
        IReadOnlyList<Diagnostic> Check(string changed)
        {
            Assert.NotEqual(TestPipelines.EveryKind, changed);
            var compilation = GeneratorHarness.Compilation((changed, "Everything.cs"));
            return GeneratorHarness.Run(compilation, GeneratorHarness.Driver(("/repo/pipelines.lock.json", lockFile))).GeneratorDiagnostics
                .Where(d => d.Id.StartsWith("PDSL2", StringComparison.Ordinal)).ToList();
        }

        var d = Assert.Single(Check(TestPipelines.EveryKind.Replace("LengthBatches = 6, SlideBatches = 2", "LengthBatches = 8, SlideBatches = 2")));
        Assert.Equal("PDSL209", d.Id);
        Assert.StartsWith("'trending': its lengthBatches changed from 6 to 8:", Message(d));
        d = Assert.Single(Check(TestPipelines.EveryKind.Replace("LengthBatches = 6, SlideBatches = 2", "LengthBatches = 6, SlideBatches = 3")));
        Assert.StartsWith("'trending': its slideBatches changed from 2 to 3:", Message(d));
        Assert.Empty(Check(TestPipelines.EveryKind.Replace("IdleTimeoutBatches = 10", "IdleTimeoutBatches = 50")).Select(Message));
    }

    [Fact]
    public void A_version_bump_with_discard_state_allows_a_guarded_change_and_a_re_key()
    {
        string changed = EventTime
            .Replace("[Pipeline(\"timed\")]", "[Pipeline(\"timed\")]\n[DiscardState(\"per-minute\", FromVersion = 1)]\n[DiscardState(\"visits\", FromVersion = 1)]")
            .Replace("Key = nameof(Order.Customer), Time = nameof(Order.Time), SizeMs = 60000, SlideMs = 0)]", "Key = nameof(Order.Region), Time = nameof(Order.Time), SizeMs = 120000, SlideMs = 0, Version = 2)]")
            .Replace("GapMs = 30000)]", "GapMs = 45000, Version = 2)]");
        Assert.Empty(Compatibility(changed).Select(Message));
    }

    [Fact]
    public void The_manifest_records_every_guarded_property_and_the_key_members()
    {
        string manifest = Manifests.Of((EventTime, "Timed.cs"));
        foreach (var property in new[] { "\"keyMember\": \"Customer\"", "\"rightKeyMember\": \"Customer\"", "\"sizeMs\": 60000", "\"slideMs\": 60000", "\"gapMs\": 30000",
                     "\"lowerBoundMs\": 0", "\"upperBoundMs\": 60000", "\"leftTime\": \"Time\"", "\"rightTime\": \"Time\"", "\"maxOutOfOrdernessMs\": 1000" })
            Assert.Contains(property, manifest);
    }

    /// <summary>
    /// The build-time verdict (PDSL2xx against the lock file) and the restore-time verdict (the runtime against a
    /// checkpoint written by the locked build) come from one rule (Graph/StateCompatibility.cs) and must agree,
    /// change by change: a build that compiles clean restores; a build that fails would be refused.
    /// </summary>
    [Theory]
    [InlineData("SizeMs = 60000, SlideMs = 0)]", "SizeMs = 120000, SlideMs = 0)]", "per-minute")]
    [InlineData("GapMs = 30000)]", "GapMs = 45000)]", "visits")]
    [InlineData("GapMs = 30000)]", "GapMs = 30000, Version = 2)]", "visits")] // a bump without a migration
    [InlineData("LowerBoundMs = 0, UpperBoundMs = 60000)]", "LowerBoundMs = 0, UpperBoundMs = 90000)]", "paid")]
    [InlineData("Key = nameof(Order.Customer), Time = nameof(Order.Time), GapMs", "Key = nameof(Order.Region), Time = nameof(Order.Time), GapMs", "visits")]
    [InlineData("MaxOutOfOrdernessMs = 1000)]\n    public static partial Stream<Order>", "MaxOutOfOrdernessMs = 4000)]\n    public static partial Stream<Order>", "timed-orders")] // safe
    [InlineData("a with { Amount = a.Amount + b.Amount };\n\n    [SessionWindow", "a with { Amount = a.Amount * b.Amount };\n\n    [SessionWindow", "per-minute")] // code only: safe
    public void The_build_time_and_the_restore_time_verdicts_agree(string before, string after, string operatorId)
    {
        string changed = EventTime.Replace(before, after);
        Assert.NotEqual(EventTime, changed);
        var buildErrors = Compatibility(changed).Where(d => d.Severity == DiagnosticSeverity.Error).Select(Message).ToList();

        var stored = PipelineDsl.Graph.PipelineManifest.Parse(Manifests.Of((EventTime, "Timed.cs")));
        var current = PipelineDsl.Graph.PipelineManifest.Parse(Manifests.Of((changed, "Timed.cs")));
        var old = stored.Find(operatorId)!;
        var restore = PipelineDsl.Execution.RestoreCompatibility.DecideOperator(
            operatorId, old.Version, old.Kind, old.StateSchema?.KeySchema, old.StateSchema?.ValueSchema, old.StateSchema?.Fingerprint, current, old);

        bool refused = restore.Action.ToString() == "Incompatible"; // (StateAction is compiled into the generator too: named by value here)
        Assert.True(refused == (buildErrors.Count > 0),
            $"build: {(buildErrors.Count == 0 ? "clean" : string.Join(" | ", buildErrors))}; restore: {restore.Action} {restore.Problem}");
    }
}
