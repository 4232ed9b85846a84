using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>Every operator kind, run by the real runner, compared with a plain computation of the same thing.</summary>
[Collection(EnrichAuditLog.Collection)]
public class OperatorTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static PipelineRunnerOptions Bounded(TempDir dir, long? perPartition = null, int parallelism = 2) => new()
    {
        CheckpointDirectory = dir.Sub("checkpoint"),
        Trigger = TriggerMode.AvailableNow,
        MaxRecordsPerPartition = perPartition,
        Parallelism = parallelism,
        CheckpointInterval = 2,
    };

    private static List<Event> SampleEvents(int n, int users, int seed = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(i => new Event("u" + random.Next(users), random.Next(-2, 50))).ToList();
    }

    /// <summary>The reference: running totals per user, state removed on a zero, keys expired after 3 idle batches.</summary>
    private static List<Total?> ReferenceTotals(IReadOnlyList<IReadOnlyList<Event>> batches)
    {
        var state = new Dictionary<string, (long Sum, long Count, long LastSeen)>();
        var output = new List<Total?>();
        for (int b = 0; b < batches.Count; b++)
        {
            foreach (var e in batches[b].Where(e => e.Value >= 0).Select(e => e with { Value = e.Value * 2 }))
            {
                if (e.Value == 0)
                {
                    state.Remove(e.User);
                    output.Add(new Total(e.User, -1, -1));
                    continue;
                }

                var s = state.TryGetValue(e.User, out var v) ? v : (0, 0, 0);
                state[e.User] = (s.Sum + e.Value, s.Count + 1, b);
                output.Add(new Total(e.User, s.Sum + e.Value, s.Count + 1));
            }

            var expired = state.Where(p => b - p.Value.LastSeen >= 3).OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
            foreach (var (user, s) in expired)
            {
                state.Remove(user);
                output.Add(new Total(user + ":expired", s.Sum, s.Count));
            }
        }

        return output;
    }

    [Fact]
    public async Task Filter_map_and_keyed_state_with_removal_and_idle_timeout_match_the_reference()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>(partitions: 1);
        var batches = new List<IReadOnlyList<Event>>();
        for (int b = 0; b < 8; b++)
        {
            // Users "late-b" appear once and then go idle, so they expire three batches later.
            var batch = SampleEvents(50, 5, seed: b).Append(new Event("late-" + b, 7)).ToList();
            batches.Add(batch);
            source.Add(0, batch);
        }

        var sink = new CollectingSink<Total?>();
        var runner = new PipelineRunner(RunningTotals.Definition, Bounded(dir, perPartition: 51))
            .BindSource(RunningTotals.Events(), source)
            .BindSink(RunningTotals.Out(), sink);
        var summary = await runner.RunAsync();

        Assert.Equal(8, summary.BatchesRun);
        Assert.Equal(ReferenceTotals(batches), sink.All);
        Assert.Contains(sink.All, t => t!.User == "late-0:expired");
    }

    [Fact]
    public async Task Sharded_keyed_state_gives_the_same_output_on_one_core_and_many()
    {
        var events = SampleEvents(60_000, 1000, seed: 7);
        async Task<List<Total?>> RunWith(int parallelism)
        {
            using var dir = new TempDir();
            var source = new MemorySource<Event>(partitions: 3);
            for (int i = 0; i < events.Count; i++) source.Add(i % 3, events[i]);
            var sink = new CollectingSink<Total?>();
            await new PipelineRunner(RunningTotals.Definition, Bounded(dir, perPartition: 10_000, parallelism: parallelism))
                .BindSource(RunningTotals.Events(), source)
                .BindSink(RunningTotals.Out(), sink)
                .RunAsync();
            return sink.All;
        }

        // The batches the runner forms: up to 10,000 records of each partition, partitions in order.
        var partitions = Enumerable.Range(0, 3).Select(p => events.Where((_, i) => i % 3 == p).ToList()).ToList();
        var batches = Enumerable.Range(0, 2).Select(b => (IReadOnlyList<Event>)partitions.SelectMany(p => p.Skip(b * 10_000).Take(10_000)).ToList()).ToList();

        var one = await RunWith(1);
        var four = await RunWith(4);
        Assert.True(one.Count > 50_000);
        Assert.Equal(ReferenceTotals(batches), one);
        Assert.Equal(one, four);
    }

    [Fact]
    public async Task Union_flat_map_reduce_and_windows_match_the_reference()
    {
        using var dir = new TempDir();
        var a = new MemorySource<Line>();
        var b = new MemorySource<Line>();
        string[] vocabulary = { "x", "y", "z", "w" };
        var random = TestRandom.Create(3, log);
        const int batchCount = 7;
        for (int batch = 0; batch < batchCount; batch++)
        {
            // Exactly 2 lines per source per batch (the cap), each of 1-3 words.
            foreach (var source in new[] { a, b })
            {
                for (int l = 0; l < 2; l++)
                {
                    var line = Enumerable.Range(0, random.Next(1, 4)).Select(_ => vocabulary[random.Next(vocabulary.Length)]).ToList();
                    source.Add(0, new Line(string.Join(" ", line)));
                }
            }
        }

        var batchCounts = new CollectingSink<WordCount>();
        var windows = new CollectingSink<Windowed<string, WordCount>>();
        var hops = new CollectingSink<Windowed<string, WordCount>>();
        await new PipelineRunner(Words.Definition, Bounded(dir, perPartition: 2))
            .BindSource(Words.A(), a)
            .BindSource(Words.B(), b)
            .BindSink(Words.BatchCounts(), batchCounts)
            .BindSink(Words.Windows(), windows)
            .BindSink(Words.Hops(), hops)
            .RunAsync();

        // Reference: the words of batch k are the words of lines 2k and 2k+1 of a, then of b (union order).
        var aLines = ReadAll(a);
        var bLines = ReadAll(b);
        var words = Enumerable.Range(0, batchCount)
            .Select(k => aLines.Skip(2 * k).Take(2).Concat(bLines.Skip(2 * k).Take(2)).SelectMany(l => l.Text.Split(' ')).ToList())
            .ToList();

        for (int k = 0; k < batchCount; k++)
        {
            var expected = words[k].GroupBy(w => w).Select(g => new WordCount(g.Key, g.Count())).ToList(); // first-seen order
            Assert.Equal(expected, batchCounts.Batches[k]);
        }

        // Sliding window of 3 batches, every batch; hopping window of 4 batches every 2.
        for (int k = 0; k < batchCount; k++)
        {
            var expected = WindowReference(words, k, 3);
            Assert.Equal(expected, windows.Batches.TryGetValue(k, out var got) ? got : new());
        }

        // Sinks get every batch; the hopping window emits only at batches 1, 3 and 5.
        Assert.Equal(new long[] { 1, 3, 5 }, hops.Batches.Where(p => p.Value.Count > 0).Select(p => p.Key));
        foreach (var k in new[] { 1, 3, 5 }) Assert.Equal(WindowReference(words, k, 4), hops.Batches[k]);
        Assert.Equal(0, hops.Batches[1][0].WindowStart);
        Assert.Equal(2, hops.Batches[5][0].WindowStart);
        Assert.Equal(5, hops.Batches[5][0].WindowEnd);
    }

    private static List<Windowed<string, WordCount>> WindowReference(List<List<string>> words, int end, int length)
    {
        int start = Math.Max(0, end - length + 1);
        return Enumerable.Range(start, end - start + 1).SelectMany(k => words[k])
            .GroupBy(w => w)
            .OrderBy(g => g.Key, StringComparer.Ordinal) // single-character keys: byte order is ordinal order
            .Select(g => new Windowed<string, WordCount>(g.Key, new WordCount(g.Key, g.Count()), start, end))
            .ToList();
    }

    private static List<Line> ReadAll(MemorySource<Line> source)
    {
        var collected = new List<Line>();
        var output = new ListOutput<Line>(collected);
        long end = source.GetEndPositionAsync("0", default).Result;
        source.ReadAsync("0", 0, end, output, default).Wait();
        return collected;
    }

    private sealed class ListOutput<T>(List<T> list) : ISourceOutput<T>
    {
        public void Emit(long position, T record) => list.Add(record);

        public void Reject(long position, string raw, Exception error) => throw error;
    }

    [Fact]
    public async Task Join_pairs_equal_keys_within_each_batch_and_for_each_batch_gets_the_batch_id()
    {
        using var dir = new TempDir();
        var orders = new MemorySource<Order>();
        var customers = new MemorySource<Customer>();
        orders.Add(0, new[] { new Order("c1", 10), new Order("c2", 20), new Order("c1", 30), new Order("c9", 99) });
        customers.Add(0, new[] { new Customer("c1", "FR"), new Customer("c2", "DE") });
        orders.Add(0, new[] { new Order("c1", 5) }); // batch 1: c1 has no customer record in batch 1
        customers.Add(0, new[] { new Customer("c3", "IT") });
        var sink = new CollectingSink<Enriched>();
        lock (Enrich.AuditLog) Enrich.AuditLog.Clear();

        var options = Bounded(dir, perPartition: 4);
        await new PipelineRunner(Enrich.Definition, options)
            .BindSource(Enrich.Orders(), orders)
            .BindSource(Enrich.Customers(), customers)
            .BindSink(Enrich.Out(), sink)
            .RunAsync();

        Assert.Equal(new[] { new Enriched("c1", "FR", 10), new Enriched("c2", "DE", 20), new Enriched("c1", "FR", 30) }, sink.Batches[0]);
        Assert.False(sink.Batches.ContainsKey(1) && sink.Batches[1].Count > 0);
        lock (Enrich.AuditLog) Assert.Equal(new[] { (0L, 3), (1L, 0) }, Enrich.AuditLog);
    }

    [Fact]
    public async Task Latest_starting_position_skips_what_was_there_before()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>(start: StartingPosition.Latest);
        source.Add(0, new Event("old", 1));
        var sink = new CollectingSink<Total?>();
        var runner = new PipelineRunner(RunningTotals.Definition, Bounded(dir))
            .BindSource(RunningTotals.Events(), source)
            .BindSink(RunningTotals.Out(), sink);
        await runner.RunAsync();
        Assert.Empty(sink.All);

        source.Add(0, new Event("new", 1));
        await runner.RunAsync();
        Assert.Equal(new[] { new Total("new", 2, 1) }, sink.All);
    }
}
