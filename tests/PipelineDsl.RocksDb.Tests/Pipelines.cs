using PipelineDsl.Sinks;

namespace PipelineDsl.RocksDb.Tests;

public sealed record Hit(string Key, long Value);

[StateContract]
public partial record struct Tally([property: Field(0)] long Count, [property: Field(1)] long Sum);

/// <summary>
/// Keyed state that grows, changes, is removed (a value divisible by 97) and expires (idle for 4 batches): every path
/// of a keyed store. Each output line says what the state was after the record.
/// </summary>
[Pipeline("rocks-tally")]
public static partial class KeyedTally
{
    [Source("hits")]
    public static partial Source<Hit> Hits();

    [UpdateState("tally", From = "hits", Key = nameof(Hit.Key), IdleTimeoutBatches = 4, OnTimeout = nameof(Expired))]
    public static string Update(string key, Hit hit, KeyedState<Tally> state)
    {
        if (hit.Value % 97 == 0)
        {
            bool had = state.Exists;
            state.Remove();
            return $"{key} removed {had}";
        }

        var next = new Tally(state.Value.Count + 1, state.Value.Sum + hit.Value);
        state.Update(next);
        return $"{key} {next.Count} {next.Sum}";
    }

    public static string Expired(string key, Tally state) => $"{key} expired {state.Count} {state.Sum}";

    [Sink("out", From = "tally")]
    public static partial Sink<string> Out();
}

/// <summary>A sink that keeps each batch's records by batch id (a replayed batch replaces itself).</summary>
public sealed class CollectingSink<T> : ISinkConnector<T>
{
    private readonly SortedDictionary<long, List<T>> _batches = new();

    public IReadOnlyDictionary<long, List<T>> Batches => _batches;

    public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        lock (_batches) _batches[batchId] = records.ToList();
        return Task.CompletedTask;
    }
}
