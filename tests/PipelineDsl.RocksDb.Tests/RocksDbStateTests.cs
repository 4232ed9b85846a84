using PipelineDsl.Checkpointing;
using PipelineDsl.Sources;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.RocksDb.Tests;

/// <summary>
/// The RocksDB state backend against the in-memory one and against a plain model: the same output, incremental
/// snapshots that upload what changed, shared files that go with the last snapshot listing them, restores from local
/// copies and from the checkpoint store, damage detected, and the switch from the in-memory backend.
/// (The runtime's and the generator's suites also run whole on this backend: see scripts/test.sh.)
/// </summary>
public sealed class RocksDbStateTests(ITestOutputHelper log) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static List<Hit> Workload(Random random, int records, int keys) =>
        Enumerable.Range(0, records).Select(i => new Hit("k" + random.Next(keys), random.Next(1, 10_000))).ToList();

    private sealed record Run(CollectingSink<string> Sink, RunSummary Summary, List<BatchProgress> Progress);

    private static async Task<Run> RunAsync(
        string checkpoint, IEnumerable<Hit> hits, StateBackend backend, CollectingSink<string>? sink = null,
        int perBatch = 500, int interval = 3, int retained = 3)
    {
        var source = new MemorySource<Hit>();
        source.Add(0, hits);
        sink ??= new CollectingSink<string>();
        var progress = new List<BatchProgress>();
        var runner = new PipelineRunner(KeyedTally.Definition, new PipelineRunnerOptions
        {
            CheckpointDirectory = checkpoint,
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = perBatch,
            CheckpointInterval = interval,
            RetainedSnapshots = retained,
            StateBackend = backend,
            Parallelism = 2,
        }).BindSource(KeyedTally.Hits(), source).BindSink(KeyedTally.Out(), sink);
        runner.BatchCompleted += progress.Add;
        var summary = await runner.RunAsync();
        return new Run(sink, summary, progress);
    }

    private RocksDbStateBackend Rocks(string name = "rocks") => new(_dir.Sub(name));

    /// <summary>The output of a plain model of <see cref="KeyedTally"/>, batch by batch, written without the runtime.</summary>
    private static SortedDictionary<long, List<string>> Model(IReadOnlyList<Hit> hits, int perBatch)
    {
        var state = new Dictionary<string, (long Count, long Sum, long LastSeen)>();
        var output = new SortedDictionary<long, List<string>>();
        for (long batch = 0; batch * perBatch < hits.Count; batch++)
        {
            var lines = output[batch] = new List<string>();
            foreach (var hit in hits.Skip((int)batch * perBatch).Take(perBatch))
            {
                if (hit.Value % 97 == 0)
                {
                    lines.Add($"{hit.Key} removed {state.Remove(hit.Key)}");
                    continue;
                }

                var (count, sum, _) = state.GetValueOrDefault(hit.Key);
                state[hit.Key] = (count + 1, sum + hit.Value, batch);
                lines.Add($"{hit.Key} {count + 1} {sum + hit.Value}");
            }

            // Idle for 4 batches: expired after the batch, in the order of the keys' MessagePack bytes (a short string first).
            foreach (var key in state.Where(s => batch - s.Value.LastSeen >= 4).Select(s => s.Key).OrderBy(k => k.Length).ThenBy(k => k, StringComparer.Ordinal).ToList())
            {
                lines.Add($"{key} expired {state[key].Count} {state[key].Sum}");
                state.Remove(key);
            }
        }

        return output;
    }

    private static void AssertSameBatches(IReadOnlyDictionary<long, List<string>> expected, IReadOnlyDictionary<long, List<string>> actual)
    {
        Assert.Equal(expected.Keys.Where(k => expected[k].Count > 0), actual.Keys.Where(k => actual[k].Count > 0));
        foreach (var (batch, lines) in expected)
        {
            if (lines.Count == 0) continue;
            int at = lines.Zip(actual[batch]).TakeWhile(p => p.First == p.Second).Count();
            Assert.True(lines.SequenceEqual(actual[batch]),
                $"batch {batch} differs at line {at}: expected '{lines.ElementAtOrDefault(at)}', got '{actual[batch].ElementAtOrDefault(at)}'");
        }
    }

    [Fact]
    public async Task The_output_equals_the_in_memory_backends_and_a_plain_model()
    {
        var hits = Workload(TestRandom.Create(20261202, log), 20_000, 3_000);
        var inMemory = await RunAsync(_dir.Sub("memory"), hits, StateBackend.InMemory);
        var rocks = await RunAsync(_dir.Sub("rocks-checkpoint"), hits, Rocks());

        var model = Model(hits, 500);
        Assert.Contains(model.Values.SelectMany(l => l), l => l.Contains(" expired ", StringComparison.Ordinal));
        Assert.Contains(model.Values.SelectMany(l => l), l => l.EndsWith(" removed True", StringComparison.Ordinal));
        AssertSameBatches(model, inMemory.Sink.Batches);
        AssertSameBatches(model, rocks.Sink.Batches);
        Assert.Equal(inMemory.Summary.StateKeys, rocks.Summary.StateKeys);
        Assert.Equal(inMemory.Progress.Select(p => p.StateKeys), rocks.Progress.Select(p => p.StateKeys));
    }

    [Fact]
    public async Task A_snapshot_uploads_only_the_files_the_store_does_not_have_and_unlisted_files_are_deleted()
    {
        // 20,000 keys first, then batches that touch 1% of them: each later snapshot writes a small part of what the first did.
        var random = TestRandom.Create(20261203, log);
        var hits = Enumerable.Range(0, 20_000).Select(i => new Hit("k" + i, random.Next(1, 97) * 97 + 1)).ToList();
        string checkpoint = _dir.Sub("checkpoint");
        var load = await RunAsync(checkpoint, hits, Rocks(), perBatch: 20_000, interval: 1, retained: 2);
        for (int batch = 0; batch < 12; batch++) hits.AddRange(Enumerable.Range(0, 200).Select(_ => new Hit("k" + random.Next(20_000), 1)));
        var run = await RunAsync(checkpoint, hits, Rocks(), perBatch: 200, interval: 1, retained: 2);

        var snapshotBytes = load.Progress.Concat(run.Progress).Select(p => p.StateOperators.Single().SnapshotBytes).Where(b => b is not null).Select(b => b!.Value).ToList();
        log.WriteLine("bytes written per snapshot: " + string.Join(", ", snapshotBytes));
        Assert.True(snapshotBytes.Count >= 12, $"{snapshotBytes.Count} snapshots");
        long first = snapshotBytes[0];
        Assert.True(first > 100_000, $"the first snapshot wrote {first} bytes");
        // Compaction now and then rewrites files (and they are uploaded again), but most snapshots add a small table.
        var later = snapshotBytes.Skip(1).Order().ToList();
        Assert.True(later[later.Count / 2] < first / 5, $"median later snapshot {later[later.Count / 2]} bytes vs the first {first}");

        // What is in shared/ is exactly what the two retained snapshots list; every listed file is there.
        var store = new LocalDirectoryCheckpointStore(checkpoint);
        var log2 = new CheckpointLog(store, KeyedTally.Definition.PipelineId);
        await log2.ReadMetadataAsync(CancellationToken.None);
        var retained = await log2.ListAsync("state", CancellationToken.None);
        Assert.Equal(2, retained.Count);
        var listed = new HashSet<string>();
        foreach (var (_, name) in retained)
            listed.UnionWith(SharedStateFiles.ListedBy(SnapshotCodec.Read(await log2.ReadSnapshotAsync(name, CancellationToken.None), name), name));
        var stored = (await store.ListAsync("shared", CancellationToken.None)).ToHashSet();
        Assert.NotEmpty(stored);
        Assert.Equal(listed.Order(StringComparer.Ordinal), stored.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_restart_without_the_local_files_downloads_them_and_continues_exactly()
    {
        var hits = Workload(TestRandom.Create(20261204, log), 12_000, 2_000);
        string checkpoint = _dir.Sub("checkpoint");
        var sink = new CollectingSink<string>();
        await RunAsync(checkpoint, hits.Take(7_000), Rocks("first-machine"), sink);

        // Another machine: nothing local, everything from the checkpoint store.
        var second = await RunAsync(checkpoint, hits, Rocks("second-machine"), sink);
        Assert.True(second.Summary.Restored);
        Assert.NotNull(second.Summary.RestoredFromBatch);
        AssertSameBatches(Model(hits, 500), sink.Batches);

        // And a restart on the same machine takes its intact local copies.
        await RunAsync(checkpoint, hits.Concat(hits.Take(2_000)), Rocks("second-machine"), sink);
        AssertSameBatches(Model(hits.Concat(hits.Take(2_000)).ToList(), 500), sink.Batches);
    }

    [Fact]
    public async Task A_damaged_shared_file_is_detected_and_recovery_uses_an_older_snapshot()
    {
        var hits = Workload(TestRandom.Create(20261205, log), 12_000, 2_000);
        string checkpoint = _dir.Sub("checkpoint");
        var sink = new CollectingSink<string>();
        var first = await RunAsync(checkpoint, hits.Take(7_000), Rocks("first-machine"), sink, interval: 2, retained: 3);

        // A file only the newest snapshot lists, damaged in the store; the new machine has no local copy.
        var store = new LocalDirectoryCheckpointStore(checkpoint);
        var checkpointLog = new CheckpointLog(store, KeyedTally.Definition.PipelineId);
        await checkpointLog.ReadMetadataAsync(CancellationToken.None);
        var snapshots = await checkpointLog.ListAsync("state", CancellationToken.None);
        var listedBy = new List<HashSet<string>>();
        foreach (var (_, name) in snapshots)
            listedBy.Add(SharedStateFiles.ListedBy(SnapshotCodec.Read(await checkpointLog.ReadSnapshotAsync(name, CancellationToken.None), name), name).ToHashSet());
        string damaged = listedBy[^1].Except(listedBy.Take(listedBy.Count - 1).SelectMany(s => s)).Order(StringComparer.Ordinal).First();
        string path = Path.Combine(checkpoint, damaged);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(path, bytes);

        var second = await RunAsync(checkpoint, hits, Rocks("second-machine"), sink, interval: 2, retained: 3);
        Assert.True(second.Summary.RestoredFromBatch < snapshots[^1].Batch, $"restored from {second.Summary.RestoredFromBatch}, newest snapshot {snapshots[^1].Batch}");
        AssertSameBatches(Model(hits, 500), sink.Batches);
        Assert.Equal(first.Summary.LastCommittedBatch, snapshots[^1].Batch);
    }

    [Fact]
    public async Task A_checkpoint_of_the_in_memory_backend_continues_on_RocksDB_but_not_the_other_way()
    {
        var hits = Workload(TestRandom.Create(20261206, log), 10_000, 1_500);
        string checkpoint = _dir.Sub("checkpoint");
        var sink = new CollectingSink<string>();
        await RunAsync(checkpoint, hits.Take(4_000), StateBackend.InMemory, sink);
        await RunAsync(checkpoint, hits, Rocks(), sink);
        AssertSameBatches(Model(hits, 500), sink.Batches);

        var refused = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => RunAsync(checkpoint, hits.Concat(hits.Take(500)), StateBackend.InMemory));
        Assert.Contains("RocksDB", refused.Message, StringComparison.Ordinal);
        Assert.Contains("operator 'tally'", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_settings_are_refused_naming_the_setting()
    {
        var tooSmall = new RocksDbStateBackend(_dir.Sub("x")) { BlockCacheBytes = 1000 };
        var e = Assert.Throws<ArgumentException>(() => new PipelineRunner(KeyedTally.Definition, new PipelineRunnerOptions { CheckpointDirectory = _dir.Sub("c"), StateBackend = tooSmall })
            .BindSource(KeyedTally.Hits(), new MemorySource<Hit>()).BindSink(KeyedTally.Out(), new CollectingSink<string>()).RunAsync().GetAwaiter().GetResult());
        Assert.Contains("BlockCacheBytes", e.Message, StringComparison.Ordinal);
    }
}
