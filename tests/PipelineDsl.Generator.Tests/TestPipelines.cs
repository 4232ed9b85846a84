namespace PipelineDsl.Generator.Tests;

/// <summary>Pipeline sources shared by several tests.</summary>
internal static class TestPipelines
{
    public const string Records = """
        using System.Collections.Generic;
        using PipelineDsl;

        namespace Demo;

        public sealed record ClickEvent(string UserId, string Url, long TimestampMs, bool IsBot);
        public sealed record Click(string UserId, string Url, long TimestampMs);
        public sealed record UserTotals(string UserId, long Clicks);

        [StateContract]
        public partial record struct UserState([property: Field(0)] long Clicks, [property: Field(1)] long LastSeenMs);
        """;

    public const string ClicksPerUser = """
        using PipelineDsl;

        namespace Demo;

        [Pipeline("clicks-per-user")]
        public static partial class ClicksPerUser
        {
            [Source("clicks")]
            public static partial Source<ClickEvent> Clicks();

            [Filter("humans", From = "clicks")]
            public static bool IsHuman(ClickEvent e) => !e.IsBot;

            [Map("parse", From = "humans")]
            public static Click Parse(ClickEvent e) => new(e.UserId, e.Url, e.TimestampMs);

            [UpdateState("per-user", From = "parse", Key = nameof(Click.UserId), Version = 2)]
            public static UserTotals PerUser(string userId, Click click, KeyedState<UserState> state)
            {
                var next = new UserState(state.Value.Clicks + 1, click.TimestampMs);
                state.Update(next);
                return new UserTotals(userId, next.Clicks);
            }

            [Sink("totals", From = "per-user")]
            public static partial Sink<UserTotals> Totals();
        }
        """;

    /// <summary>Uses every operator kind the DSL offers.</summary>
    public const string EveryKind = """
        using System;
        using System.Collections.Generic;
        using System.Threading.Tasks;
        using PipelineDsl;

        namespace Demo.Everything;

        public sealed record Line(string Text);
        public sealed record Word(string Text, long Count);
        public sealed record Order(string Customer, decimal Amount);
        public sealed record Customer(string Id, string Country);
        public sealed record Enriched(string Customer, string Country, decimal Amount);
        public sealed record Alert(string Word, long Total);

        public enum Level : byte { Low, High }

        [StateContract]
        public partial class WordState
        {
            [Field(0)] public long Total { get; set; }
            [Field(1)] public List<string> Recent { get; set; } = new();
            [Field(2)] public Dictionary<string, int>? PerSource { get; set; }
            [Field(3)] public Level Level { get; set; }
            [Field(5)] public DateTime? LastSeen { get; set; }
            [Field(6)] public Guid Id { get; init; }
            [Field(7)] public byte[]? Raw { get; set; }
            [Field(8)] public Nested Inner { get; set; }
        }

        [StateContract]
        public partial struct Nested
        {
            [Field(0)] public int A;
            [Field(1)] public double[] B;
        }

        [StateContract]
        public sealed partial record Summary([property: Field(0)] string Word, [property: Field(1)] long Count);

        [Pipeline("everything")]
        internal static partial class Everything
        {
            [Source("lines")]
            public static partial Source<Line> Lines();

            [Source("more-lines", Version = 3)]
            internal static partial Source<Line> MoreLines();

            [Union("all-lines", "lines", "more-lines")]
            public static partial Stream<Line> AllLines();

            [FlatMap("words", From = "all-lines")]
            public static IEnumerable<string> Split(Line line) => line.Text.Split(' ');

            [Filter("non-empty", From = "words")]
            public static bool NonEmpty(string word) => word.Length > 0;

            [Map("counted", From = "non-empty")]
            public static Word One(string word) => new(word, 1);

            [Reduce("per-batch", From = "counted", Key = nameof(Word.Text))]
            public static Word Add(Word a, Word b) => new(a.Text, a.Count + b.Count);

            [UpdateState("totals", From = "per-batch", Key = nameof(Word.Text), IdleTimeoutBatches = 10, OnTimeout = nameof(Expired))]
            public static Alert? Track(string word, Word batch, KeyedState<WordState> state)
            {
                var s = state.Exists ? state.Value : new WordState();
                s.Total += batch.Count;
                state.Update(s);
                return s.Total > 100 ? new Alert(word, s.Total) : null;
            }

            public static Alert? Expired(string word, WordState state) => null;

            [Map("as-summary", From = "per-batch")]
            public static Summary ToSummary(Word w) => new(w.Text, w.Count);

            [Window("trending", From = "as-summary", Key = nameof(Summary.Word), LengthBatches = 6, SlideBatches = 2)]
            public static Summary Merge(Summary a, Summary b) => new(a.Word, a.Count + b.Count);

            [Source("orders")]
            public static partial Source<Order> Orders();

            [Source("customers")]
            public static partial Source<Customer> Customers();

            [Join("enriched", Left = "orders", Right = "customers", LeftKey = nameof(Order.Customer), RightKey = nameof(Customer.Id))]
            public static Enriched Enrich(Order o, Customer c) => new(o.Customer, c.Country, o.Amount);

            [Sink("alerts", From = "totals")]
            public static partial Sink<Alert?> Alerts();

            [Sink("trends", From = "trending")]
            public static partial Sink<Windowed<string, Summary>> Trends();

            [ForEachBatch("audit", From = "enriched")]
            public static void Audit(long batchId, IReadOnlyList<Enriched> records) { }

            [ForEachBatch("async-audit", From = "enriched")]
            public static Task AuditAsync(long batchId, IReadOnlyList<Enriched> records) => Task.CompletedTask;
        }
        """;
}
