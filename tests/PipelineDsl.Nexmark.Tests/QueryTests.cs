using PipelineDsl.Nexmark;
using PipelineDsl.Samples.Nexmark;

namespace PipelineDsl.Nexmark.Tests;

/// <summary>
/// Each query's pipeline output over the first 1,000,000 canonical events equals its plain reference: the
/// pipeline runs in micro-batches of 50,000 events with checkpoints, and writes exactly-once CSV files.
/// </summary>
public class QueryTests
{
    public const long Events = 1_000_000;

    public static IEnumerable<object[]> Queries => QueryCatalog.All.Select(q => new object[] { q.Name });

    /// <summary>The canonical events, generated afresh for each reference (a pure function of the position).</summary>
    public static IEnumerable<Event> CanonicalEvents(long count = Events)
    {
        var generator = new NexmarkGenerator(new NexmarkConfiguration { NumEvents = count });
        for (long k = 0; k < count; k++) yield return generator.Generate(k);
    }

    /// <summary>
    /// The queries whose state is keyed state, join buffers, sessions and window panes (and a watermark): on the RocksDB
    /// backend all of it but the watermark is in RocksDB. Every stateful query is here.
    /// </summary>
    public static IEnumerable<object[]> RocksDbQueries => new[] { "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q11", "q12", "q15", "q16", "q17", "q18", "q19", "q20", "q23" }.Select(q => new object[] { q });

    [Theory]
    [MemberData(nameof(Queries))]
    public Task PipelineOutputEqualsTheReference(string name) => RunAndCompareAsync(name, rocksdb: false);

    [Theory]
    [MemberData(nameof(RocksDbQueries))]
    public Task OnRocksDbPipelineOutputEqualsTheReference(string name) => RunAndCompareAsync(name, rocksdb: true);

    private static async Task RunAndCompareAsync(string name, bool rocksdb)
    {
        using var dir = new TempDir();
        var query = QueryCatalog.Get(name);
        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = Path.Combine(dir.Path, "checkpoint"),
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = 50_000,
            StateBackend = rocksdb ? new RocksDbStateBackend(Path.Combine(dir.Path, "rocksdb")) : StateBackend.InMemory,
        };
        // The runtime's clock moves 3 s per batch: q12's windows of processing time hold 3 or 4 batches each.
        var clock = new StepClock(References.Q12BaseTime);
        options.Clock = clock;
        long late = 0;
        var batchTimes = new List<(long From, long To, long PlannedAt)>();
        var (runner, _) = query.CreateRunner(options, new NexmarkSource(new NexmarkConfiguration { NumEvents = Events }), Path.Combine(dir.Path, "out"));
        runner.BatchCompleted += p =>
        {
            late += p.LateRecords;
            foreach (var partition in p.Sources.SelectMany(s => s.Partitions))
                batchTimes.Add((partition.StartPosition, partition.EndPosition, p.PlannedAt.ToUnixTimeMilliseconds()));
            clock.Advance(TimeSpan.FromSeconds(3));
        };
        var summary = await runner.RunAsync();
        Assert.Equal(Events, summary.InputRecords);
        Assert.Equal(0, late); // in-order events and a 4 s watermark delay: nothing is late
        Assert.Equal(0, summary.StateKeys - QueryOutputs.UnboundedStateKeys(name, summary.StateKeys)); // closed windows and joins leave nothing
        var reference = name == "q12"
            ? References.Q12(CanonicalEvents(), n => batchTimes.Single(b => b.From <= n && n < b.To).PlannedAt) // each event at its batch's time
            : References.ByQuery[name](CanonicalEvents());
        if (name == "q12") Assert.True(batchTimes.Select(b => b.PlannedAt).Distinct().Count() >= 20, "the batches did not see the clock move");
        QueryOutputs.AssertEqual(name, reference.Select(r => r.ToCsv()).ToList(), QueryOutputs.Read(Path.Combine(dir.Path, "out")));
    }
}

/// <summary>A clock that stands still until the test moves it (the runtime's clock in the query tests).</summary>
public sealed class StepClock(long startUnixMilliseconds) : TimeProvider
{
    private long _now = startUnixMilliseconds;

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Interlocked.Read(ref _now));

    public void Advance(TimeSpan by) => Interlocked.Add(ref _now, (long)by.TotalMilliseconds);
}

/// <summary>Reading a query's output files and comparing them with a reference.</summary>
public static class QueryOutputs
{
    /// <summary>Queries whose output is a stream of updates: only the last row per key is compared (the key: the first columns, or for q19 the auction and the rank, the last).</summary>
    private static readonly Dictionary<string, Func<string[], string>> UpdatingKeys = new()
    {
        ["q4"] = c => c[0], ["q15"] = c => c[0], ["q16"] = c => c[0] + "," + c[1], ["q17"] = c => c[0] + "," + c[1], ["q18"] = c => c[0] + "," + c[1],
        ["q19"] = c => c[0] + "," + c[^1],
    };

    /// <summary>Queries that keep state forever by definition (unbounded joins, per-key aggregates).</summary>
    private static readonly HashSet<string> UnboundedState = new() { "q3", "q4", "q6", "q15", "q16", "q17", "q18", "q19", "q20", "q23" };

    public static long UnboundedStateKeys(string query, long keys) => UnboundedState.Contains(query) ? keys : 0;

    /// <summary>
    /// Every line of the part files of <paramref name="directory"/>, in batch order: for a partitioned sink (q10), the
    /// files its batch log lists, after checking that they are every data file there is and that each row's dt and hm
    /// columns equal its partition directory's.
    /// </summary>
    public static List<string> Read(string directory)
    {
        if (!Directory.Exists(directory)) return new List<string>();
        if (!Directory.Exists(Path.Combine(directory, Sinks.PartitionedFileSink.BatchLogFolder)))
            return Directory.GetFiles(directory, "part-*.txt").OrderBy(f => f, StringComparer.Ordinal).SelectMany(File.ReadAllLines).ToList();

        var listed = Sinks.PartitionedFileSink.CommittedFiles(directory);
        var onDisk = Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(directory, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(f => !f.StartsWith('_') && !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(onDisk, listed.Order(StringComparer.Ordinal).ToList());
        var lines = new List<string>();
        foreach (var file in listed)
        {
            var partition = file.Split('/')[..^1].Select(segment => segment.Split('=')).ToDictionary(p => p[0], p => Sinks.PartitionedFileSink.UnescapePartitionValue(p[1]));
            foreach (var line in File.ReadAllLines(Path.Combine(directory, file)))
            {
                var columns = line.Split(',');
                Assert.True(columns[^2] == partition["dt"] && columns[^1] == partition["hm"], $"{file}: the row '{line}' is not of its partition");
                lines.Add(line);
            }
        }

        return lines;
    }

    public static void AssertEqual(string query, List<string> reference, List<string> actual)
    {
        if (UpdatingKeys.TryGetValue(query, out var key))
            actual = actual.GroupBy(l => key(l.Split(','))).Select(g => g.Last()).ToList();
        Assert.NotEmpty(reference);
        reference.Sort(StringComparer.Ordinal);
        actual.Sort(StringComparer.Ordinal);
        if (reference.SequenceEqual(actual)) return;
        var missing = reference.Except(actual).Take(3).ToList();
        var extra = actual.Except(reference).Take(3).ToList();
        Assert.Fail($"{query}: {actual.Count} rows, the reference has {reference.Count}. Missing: [{string.Join(" | ", missing)}] Unexpected: [{string.Join(" | ", extra)}]");
    }
}
