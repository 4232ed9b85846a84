using PipelineDsl;
using PipelineDsl.Sinks;

namespace PipelineDsl.Bench;

public sealed record Click(string User, long Value);
public sealed record UserCount(string User, long Count);

[Pipeline("bench-map-filter")]
public static partial class MapFilter
{
    [Source("in")]
    public static partial Source<Click> In();

    [Map("scale", From = "in")]
    public static Click Scale(Click c) => Work.Scale(c);

    [Filter("even", From = "scale")]
    public static bool Even(Click c) => Work.Keep(c);

    [Sink("out", From = "even")]
    public static partial Sink<Click> Out();
}

[Pipeline("bench-keyed-count")]
public static partial class KeyedCount
{
    [Source("in")]
    public static partial Source<Click> In();

    [UpdateState("count", From = "in", Key = nameof(Click.User))]
    public static UserCount Count(string user, Click c, KeyedState<long> state)
    {
        long n = state.Value + 1;
        state.Update(n);
        return new UserCount(user, n);
    }

    [Sink("out", From = "count")]
    public static partial Sink<UserCount> Out();
}

/// <summary>The per-record work, shared by the pipelines and the plain loops so both do exactly the same.</summary>
public static class Work
{
    public static Click Scale(Click c) => new(c.User, c.Value * 3);

    public static bool Keep(Click c) => (c.Value & 1) == 0;
}

/// <summary>Counts what it receives; keeps nothing.</summary>
public sealed class CountingSink<T> : ISinkConnector<T>
{
    public long Count;

    public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        Count += records.Count;
        return Task.CompletedTask;
    }
}
