using PipelineDsl.Sinks;

namespace PipelineDsl.Runtime.Tests;

public sealed record Event(string User, long Value);
public sealed record Total(string User, long Sum, long Count);

[StateContract]
public partial record struct Running([property: Field(0)] long Sum, [property: Field(1)] long Count);

/// <summary>Every stateless kind plus keyed state with a timeout.</summary>
[Pipeline("running-totals")]
public static partial class RunningTotals
{
    [Source("events")]
    public static partial Source<Event> Events();

    [Filter("non-negative", From = "events")]
    public static bool NonNegative(Event e) => e.Value >= 0;

    [Map("doubled", From = "non-negative")]
    public static Event Double(Event e) => e with { Value = e.Value * 2 };

    [UpdateState("totals", From = "doubled", Key = nameof(Event.User), IdleTimeoutBatches = 3, OnTimeout = nameof(Expired))]
    public static Total? Update(string user, Event e, KeyedState<Running> state)
    {
        if (e.Value == 0)
        {
            state.Remove();
            return new Total(user, -1, -1);
        }

        var next = new Running(state.Value.Sum + e.Value, state.Value.Count + 1);
        state.Update(next);
        return new Total(user, next.Sum, next.Count);
    }

    public static Total? Expired(string user, Running state) => new(user + ":expired", state.Sum, state.Count);

    [Sink("out", From = "totals")]
    public static partial Sink<Total?> Out();
}

/// <summary>Keyed state that most records leave unchanged: the running maximum per user, emitted when it rises.</summary>
[Pipeline("running-max")]
public static partial class RunningMax
{
    [Source("events")]
    public static partial Source<Event> Events();

    [UpdateState("max", From = "events", Key = nameof(Event.User))]
    public static Total? Max(string user, Event e, KeyedState<long> max)
    {
        if (max.Exists && e.Value <= max.Value) return null;
        max.Update(e.Value);
        return new Total(user, e.Value, 0);
    }

    [Sink("out", From = "max")]
    public static partial Sink<Total?> Out();
}

public sealed record Line(string Text);
[StateContract]
public sealed partial record WordCount([property: Field(0)] string Word, [property: Field(1)] long Count);

[Pipeline("words")]
public static partial class Words
{
    [Source("a")]
    public static partial Source<Line> A();

    [Source("b")]
    public static partial Source<Line> B();

    [Union("lines", "a", "b")]
    public static partial Stream<Line> Lines();

    [FlatMap("split", From = "lines")]
    public static string[] Split(Line line) => line.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    [Map("one", From = "split")]
    public static WordCount One(string word) => new(word, 1);

    [Reduce("per-batch", From = "one", Key = nameof(WordCount.Word))]
    public static WordCount Add(WordCount a, WordCount b) => new(a.Word, a.Count + b.Count);

    [Window("window", From = "one", Key = nameof(WordCount.Word), LengthBatches = 3, SlideBatches = 1)]
    public static WordCount Merge(WordCount a, WordCount b) => new(a.Word, a.Count + b.Count);

    [Window("hopping", From = "one", Key = nameof(WordCount.Word), LengthBatches = 4, SlideBatches = 2)]
    public static WordCount MergeHopping(WordCount a, WordCount b) => new(a.Word, a.Count + b.Count);

    [Sink("batch-counts", From = "per-batch")]
    public static partial Sink<WordCount> BatchCounts();

    [Sink("windows", From = "window")]
    public static partial Sink<Windowed<string, WordCount>> Windows();

    [Sink("hops", From = "hopping")]
    public static partial Sink<Windowed<string, WordCount>> Hops();
}

public sealed record Order(string Customer, long Amount);
public sealed record Customer(string Id, string Country);
public sealed record Enriched(string Customer, string Country, long Amount);

[Pipeline("enrich")]
public static partial class Enrich
{
    public static readonly List<(long Batch, int Count)> AuditLog = new();

    [Source("orders")]
    public static partial Source<Order> Orders();

    [Source("customers")]
    public static partial Source<Customer> Customers();

    [Join("joined", Left = "orders", Right = "customers", LeftKey = nameof(Order.Customer), RightKey = nameof(Customer.Id))]
    public static Enriched Join(Order o, Customer c) => new(o.Customer, c.Country, o.Amount);

    [ForEachBatch("audit", From = "joined")]
    public static void Audit(long batchId, IReadOnlyList<Enriched> records)
    {
        lock (AuditLog) AuditLog.Add((batchId, records.Count));
    }

    [Sink("out", From = "joined")]
    public static partial Sink<Enriched> Out();
}

/// <summary>A sink that keeps each batch's records by batch id (a replayed batch replaces itself).</summary>
public sealed class CollectingSink<T> : ISinkConnector<T>
{
    private readonly SortedDictionary<long, List<T>> _batches = new();

    public int Writes { get; private set; }

    public IReadOnlyDictionary<long, List<T>> Batches => _batches;

    /// <summary>Every record so far, in batch order; safe to poll while the pipeline writes (tests wait on it).</summary>
    public List<T> All
    {
        get
        {
            lock (_batches) return _batches.Values.SelectMany(b => b).ToList();
        }
    }

    public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        lock (_batches)
        {
            _batches[batchId] = records.ToList();
            Writes++;
        }

        return Task.CompletedTask;
    }
}

/// <summary>Tests that run the "enrich" pipeline, whose for-each-batch stage appends to the static <c>Enrich.AuditLog</c>, run one at a time.</summary>
[CollectionDefinition(Collection)]
public sealed class EnrichAuditLog
{
    public const string Collection = "enrich audit log";
}

/// <summary>
/// Stateless operators in chains the runtime fuses: kept -> scaled feeds two consumers (so it ends a chain), and
/// expanded -> labelled is a second chain. A user named "poison" makes the chain's head throw.
/// </summary>
[Pipeline("chained")]
public static partial class Chained
{
    [Source("events")]
    public static partial Source<Event> Events();

    [Filter("kept", From = "events")]
    public static bool Kept(Event e) =>
        e.User == "poison" ? throw new InvalidOperationException("poison record") : e.Value % 7 != 3;

    [Map("scaled", From = "kept")]
    public static Event Scaled(Event e) => e with { Value = e.Value * 3 + 1 };

    [FlatMap("expanded", From = "scaled")]
    public static IEnumerable<Event> Expanded(Event e)
    {
        // None, one or two records per input, and a lazily produced sequence (not an array or list).
        for (long i = 0; i < e.Value % 3; i++) yield return e with { Value = e.Value + i };
    }

    [Map("labelled", From = "expanded")]
    public static Total Labelled(Event e) => new(e.User, e.Value, e.Value % 5);

    [Sink("scaled-out", From = "scaled")]
    public static partial Sink<Event> ScaledOut();

    [Sink("out", From = "labelled")]
    public static partial Sink<Total> Out();
}
