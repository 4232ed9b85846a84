using PipelineDsl.Checkpointing;
using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The pane store's contract (event-time window state), on the heap and in RocksDB: a snapshot restores exactly the panes;
/// the deltas of a sequence of batches, applied in order, give exactly the panes after them, on either store; a batch's
/// delta holds what it changed and nothing else; legacy windows of a build before panes are kept until they fire; damage
/// is named; dump-state reads both stores alike.
/// </summary>
public sealed class PaneStoreTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _rocksDirectory = Path.Combine(Path.GetTempPath(), "pdsl-panes-" + Guid.NewGuid().ToString("N"));
    private readonly List<IDisposable> _stores = new();
    private readonly InMemoryCheckpointStore _checkpoint = new();

    public void Dispose()
    {
        foreach (var s in _stores) s.Dispose();
        if (Directory.Exists(_rocksDirectory)) Directory.Delete(_rocksDirectory, recursive: true);
    }

    private IPaneStore<string, long> NewStore(string backend, bool tumbling = false)
    {
        StateBackend chosen = backend == "rocksdb" ? new RocksDbStateBackend(_rocksDirectory) : StateBackend.InMemory;
        var store = chosen.CreatePaneStore(new PaneStoreSpec<string, long>("pane-tests", "windows", MessagePackFormatters.String!, MessagePackFormatters.Int64, tumbling));
        _stores.Add(store);
        return store;
    }

    private static readonly Func<long, long, long> Sum = (a, b) => a + b;

    /// <summary>Takes a snapshot of <paramref name="from"/> (uploading its files) and restores it into <paramref name="into"/>.</summary>
    private void SnapshotInto(IPaneStore<string, long> from, IPaneStore<string, long> into, long batchId)
    {
        var w = new MessagePackWriter(256);
        var files = new SharedStateFiles(_checkpoint);
        files.UploadAsync(from.WriteSnapshot(w, batchId), default).GetAwaiter().GetResult();
        into.RestoreSnapshot(w.ToArray(), from.SnapshotFormat, files);
    }

    private static string Entries(IPaneStore<string, long> store) =>
        string.Join(" ", store.Entries().Select(e => $"{(e.Legacy ? "w" : "p")}{e.Start}:{e.Key}={e.Value}").Order(StringComparer.Ordinal));

    /// <summary>What a store holds: its entries, which a snapshot restored into a fresh store of its backend holds too.</summary>
    private string Contents(IPaneStore<string, long> store, string backend, bool tumbling)
    {
        var copy = NewStore(backend, tumbling);
        SnapshotInto(store, copy, 0);
        string entries = Entries(store);
        Assert.Equal(entries, Entries(copy));
        Assert.Equal(store.KeyCount, copy.KeyCount);
        Assert.Equal(store.KeyCount, store.Entries().LongCount());
        return entries;
    }

    /// <summary>An older build's whole hopping windows (a format-1 snapshot: an array of [start, [[key, value], ...]]).</summary>
    private static byte[] LegacySnapshot(params (long Start, string Key, long Value)[] entries)
    {
        var w = new MessagePackWriter(64);
        var windows = entries.GroupBy(e => e.Start).ToList();
        w.WriteArrayHeader(windows.Count);
        foreach (var window in windows)
        {
            w.WriteArrayHeader(2);
            w.Write(window.Key);
            w.WriteArrayHeader(window.Count());
            foreach (var e in window)
            {
                w.WriteArrayHeader(2);
                w.Write(e.Key);
                w.Write(e.Value);
            }
        }

        return w.ToArray();
    }

    [Theory]
    [InlineData("in-memory", false)]
    [InlineData("in-memory", true)]
    [InlineData("rocksdb", false)]
    [InlineData("rocksdb", true)]
    public void Deltas_applied_in_order_rebuild_exactly_the_panes_a_snapshot_holds(string backend, bool tumbling)
    {
        var random = TestRandom.Create(20261202, log);
        var live = NewStore(backend, tumbling);
        var rebuilt = NewStore(backend, tumbling);
        var heap = NewStore("in-memory", tumbling);
        if (!tumbling)
        {
            // Start from an older build's whole windows, which fire (and leave) one by one below.
            var legacy = LegacySnapshot((0, "k1", 5), (0, "k2", 6), (1000, "k1", 7), (2000, "k3", 8));
            foreach (var store in new[] { live, rebuilt, heap }) store.RestoreSnapshot(legacy, null, null);
            Assert.Equal(4, live.KeyCount);
        }

        for (int batch = 0; batch < 50; batch++)
        {
            live.BeginBatch();
            for (int op = 0; op < 30; op++)
            {
                long start = 1000L * (batch + random.Next(4)) - 3000; // some panes before 1970
                live.Fold(start, "k" + random.Next(8), random.Next(100), Sum);
            }

            live.EndFolds();
            // Panes behind the "watermark" are removed and legacy windows fire, the way a window does.
            long watermark = 1000L * (batch - 1) - 3000;
            while (live.TryGetFirstPane(out long first) && first < watermark) live.RemovePane(first);
            var fired = new Dictionary<string, long>();
            foreach (long s in live.LegacyWindowStarts.Where(s => s < watermark + 3000).ToList()) Assert.True(live.TakeLegacyWindow(s, fired));

            var delta = new MessagePackWriter(256);
            live.WriteDelta(delta);
            var r = new MessagePackReader(delta.WrittenSpan);
            rebuilt.ApplyDelta(ref r);
            // The heap store reads the same deltas to the same panes: the layout is one, whatever the backend.
            var h = new MessagePackReader(delta.WrittenSpan);
            heap.ApplyDelta(ref h);
            string contents = Contents(live, backend, tumbling);
            Assert.Equal(contents, Contents(rebuilt, backend, tumbling));
            Assert.Equal(contents, Contents(heap, "in-memory", tumbling));
            Assert.Equal(heap.KeyCount, live.KeyCount);
            Assert.Equal(heap.KeyCount, rebuilt.KeyCount);
            Assert.Equal(live.PaneStarts, rebuilt.PaneStarts);
        }

        Assert.False(live.HasLegacyWindows);
        Assert.NotEqual("", Contents(live, backend, tumbling));
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void A_batchs_delta_holds_only_its_changes_and_a_removed_pane_no_updates(string backend)
    {
        var store = NewStore(backend, tumbling: true);
        store.BeginBatch();
        store.Fold(0, "x", 1, Sum);
        store.Fold(100, "y", 2, Sum);
        store.Fold(100, "z", 4, Sum);
        store.EndFolds();
        store.BeginBatch();
        store.Fold(100, "y", 1, Sum);
        store.Fold(0, "x", 1, Sum);
        store.EndFolds();
        Assert.Equal(2, store.UpdatedCount);
        store.RemovePane(0);
        Assert.Equal(1, store.UpdatedCount);
        Assert.Equal(new[] { ("y", 3L), ("z", 4L) }, store.Pane(100).Select(e => (e.Key, e.Value)).OrderBy(e => e.Key));

        var w = new MessagePackWriter(64);
        store.WriteDelta(w);
        var r = new MessagePackReader(w.WrittenSpan);
        Assert.Equal(2, r.ReadMapHeader());
        Assert.Equal(0, r.ReadInt64());
        Assert.Equal(1, r.ReadArrayHeader()); // only pane 100, only key y
        Assert.Equal(2, r.ReadArrayHeader());
        Assert.Equal(100, r.ReadInt64());
        Assert.Equal(1, r.ReadArrayHeader());
        Assert.Equal(2, r.ReadArrayHeader());
        Assert.Equal("y", r.ReadString());
        Assert.Equal(3, r.ReadInt64());
        Assert.Equal(1, r.ReadInt64()); // fired: pane 0
        Assert.Equal(1, r.ReadArrayHeader());
        Assert.Equal(0, r.ReadInt64());
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void A_key_folded_twice_in_a_batch_is_one_update_and_older_values_are_read_back(string backend)
    {
        var store = NewStore(backend, tumbling: true);
        store.BeginBatch();
        store.Fold(0, "x", 1, Sum);
        store.EndFolds();
        store.BeginBatch();
        store.Fold(0, "x", 9, Math.Max);
        store.Fold(0, "x", 4, Sum);
        store.Fold(0, "y", 9, Sum);
        store.EndFolds();
        Assert.Equal(2, store.UpdatedCount);
        Assert.Equal(2, store.KeyCount);
        Assert.Equal("p0:x=13 p0:y=9", Entries(store));
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void A_snapshot_with_a_pane_or_key_twice_is_rejected_naming_the_operator(string backend)
    {
        var paneTwice = new MessagePackWriter(64);
        paneTwice.WriteArrayHeader(2);
        for (int i = 0; i < 2; i++)
        {
            paneTwice.WriteArrayHeader(2);
            paneTwice.Write(5L);
            paneTwice.WriteArrayHeader(0);
        }

        var e = Assert.Throws<MessagePackException>(() => NewStore(backend, tumbling: true).RestoreSnapshot(paneTwice.ToArray(), 2, null));
        Assert.Contains("'windows'", e.Message);
        Assert.Contains("window 5 twice", e.Message);

        var keyTwice = LegacySnapshot((7, "k", 1), (7, "k", 2));
        e = Assert.Throws<MessagePackException>(() => NewStore(backend, tumbling: true).RestoreSnapshot(keyTwice, 2, null));
        Assert.Contains("'windows'", e.Message);
        Assert.Contains("key k twice", e.Message);
    }

    [Fact]
    public async Task A_RocksDB_snapshot_restored_in_memory_is_refused_naming_the_backend()
    {
        var rocks = NewStore("rocksdb");
        var w = new MessagePackWriter(64);
        await new SharedStateFiles(_checkpoint).UploadAsync(rocks.WriteSnapshot(w, 1), default);
        var e = Assert.Throws<InvalidOperationException>(() => NewStore("in-memory").RestoreSnapshot(w.ToArray(), SharedStateFileSet.Format, new SharedStateFiles(_checkpoint)));
        Assert.Contains("RocksDB", e.Message);
        Assert.Contains("'windows'", e.Message);
    }

    [Fact]
    public async Task Dump_state_of_a_RocksDB_store_equals_the_heap_stores_line_for_line()
    {
        var heap = NewStore("in-memory");
        var rocks = NewStore("rocksdb");
        var legacy = LegacySnapshot((-1000, "old", 3));
        foreach (var store in new[] { heap, rocks })
        {
            store.RestoreSnapshot(legacy, null, null);
            store.BeginBatch();
            store.Fold(0, "a", 7, Sum);
            store.Fold(0, "b", 8, Sum);
            store.Fold(-500, "a", 9, Sum);
            store.EndFolds();
        }

        var hw = new MessagePackWriter(256);
        heap.WriteSnapshot(hw, 1);
        var heapDump = new StringWriter();
        StateDump.WriteJsonLines("event-time-window", hw.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, heapDump);
        var rw = new MessagePackWriter(256);
        var files = new SharedStateFiles(_checkpoint);
        await files.UploadAsync(rocks.WriteSnapshot(rw, 1), default);
        var rocksDump = new StringWriter();
        PipelineDsl.RocksDb.RocksDbStateDump.Dump("event-time-window", rw.ToArray(), files, "windows", new Dictionary<long, string>(), new JsonLines(rocksDump, int.MaxValue));

        static string[] Lines(StringWriter w) => w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToArray();
        Assert.Equal(new[]
        {
            "{\"pane\":-500,\"key\":\"a\",\"value\":9}",
            "{\"pane\":0,\"key\":\"a\",\"value\":7}",
            "{\"pane\":0,\"key\":\"b\",\"value\":8}",
            "{\"window\":-1000,\"key\":\"old\",\"value\":3}",
        }, Lines(rocksDump));
        Assert.Equal(Lines(heapDump).Order(StringComparer.Ordinal), Lines(rocksDump).Order(StringComparer.Ordinal));
    }
}
