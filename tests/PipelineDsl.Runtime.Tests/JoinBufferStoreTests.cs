using PipelineDsl.Checkpointing;
using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The stream join's buffer, on the heap and in RocksDB: deltas applied in order rebuild exactly what the live buffer
/// keeps (the appends and the expiry both), a snapshot restores it, every buffer reads the heap's snapshots and format 1
/// deltas, and dump-state reads both layouts alike.
/// </summary>
public sealed class JoinBufferStoreTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _rocksDirectory = Path.Combine(Path.GetTempPath(), "pdsl-join-buffer-" + Guid.NewGuid().ToString("N"));
    private readonly List<IDisposable> _buffers = new();
    private readonly InMemoryCheckpointStore _checkpoint = new();

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
        if (Directory.Exists(_rocksDirectory)) Directory.Delete(_rocksDirectory, recursive: true);
    }

    // The keys the tests use: a RocksDB buffer is read key by key.
    private static readonly string[] Keys = ["a", "k0", "k1", "k2", "k3", "k4", "k5"];

    // Left and right records are times; a left record matches rights up to 30 later, a right one lefts up to 30 earlier.
    private IJoinBuffer<string, long, long> NewStore(string backend, bool expires = true)
    {
        var spec = new JoinBufferSpec<string, long, long>(
            "join-buffer-tests", "paid", MessagePackFormatters.String!, MessagePackFormatters.Int64, MessagePackFormatters.Int64,
            expires ? l => l + 30 : null, expires ? r => r : null);
        StateBackend chosen = backend == "rocksdb" ? new RocksDbStateBackend(_rocksDirectory) : StateBackend.InMemory;
        var buffer = chosen.CreateJoinBuffer(spec);
        _buffers.Add(buffer);
        return buffer;
    }

    private static JoinBufferStore<string, long, long> NewHeapStore(bool expires = true) =>
        new(new JoinBufferSpec<string, long, long>("join-buffer-tests", "paid", MessagePackFormatters.String!, MessagePackFormatters.Int64, MessagePackFormatters.Int64,
            expires ? l => l + 30 : null, expires ? r => r : null));

    /// <summary>What a buffer keeps, in a canonical order: its heap snapshot, or each key's sides read back from RocksDB.</summary>
    private static string Contents(IJoinBuffer<string, long, long> store)
    {
        var lines = new List<string>();
        if (store is JoinBufferStore<string, long, long> heap)
        {
            var w = new MessagePackWriter(256);
            heap.WriteSnapshot(w);
            var r = new MessagePackReader(w.WrittenSpan);
            int keys = r.ReadArrayHeader();
            for (int i = 0; i < keys; i++)
            {
                Assert.Equal(3, r.ReadArrayHeader());
                string key = r.ReadString()!;
                var lefts = new List<long>();
                for (int n = r.ReadArrayHeader(); n > 0; n--) lefts.Add(r.ReadInt64());
                var rights = new List<long>();
                for (int n = r.ReadArrayHeader(); n > 0; n--) rights.Add(r.ReadInt64());
                lines.Add($"{key}:L[{string.Join(",", lefts)}]R[{string.Join(",", rights)}]");
            }
        }
        else
        {
            store.BeginBatch();
            foreach (var key in Keys)
            {
                store.SidesForLeft(key);
                var sides = store.SidesForRight(key);
                if (!sides.IsEmpty) lines.Add($"{key}:L[{string.Join(",", sides.Left ?? [])}]R[{string.Join(",", sides.Right ?? [])}]");
            }

            store.BeginBatch();
        }

        lines.Sort(StringComparer.Ordinal);
        return string.Join(" ", lines);
    }

    /// <summary>Takes a snapshot of <paramref name="from"/> (uploading its files) and restores it into <paramref name="into"/>.</summary>
    private void SnapshotInto(IJoinBuffer<string, long, long> from, IJoinBuffer<string, long, long> into, long batchId)
    {
        var w = new MessagePackWriter(256);
        var files = new SharedStateFiles(_checkpoint);
        var uploads = from.WriteSnapshot(w, batchId);
        files.UploadAsync(uploads, default).GetAwaiter().GetResult();
        into.RestoreSnapshot(w.ToArray(), from.SnapshotFormat, files);
    }

    private static string EntriesOf(IJoinBuffer<string, long, long> store) =>
        string.Join(" ", store.Entries().OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}:L[{string.Join(",", e.Left)}]R[{string.Join(",", e.Right)}]"));

    private static void ApplyDelta(IJoinBuffer<string, long, long> store, MessagePackWriter delta)
    {
        var r = new MessagePackReader(delta.WrittenSpan);
        store.ApplyDelta(ref r);
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void Deltas_applied_in_order_rebuild_exactly_what_the_live_store_keeps(string backend)
    {
        var random = TestRandom.Create(20261202, log);
        var live = NewStore(backend);
        var rebuilt = NewStore(backend);
        var restored = NewStore(backend);
        var heap = NewHeapStore();
        long everKept = 0;
        for (int batch = 0; batch < 50; batch++)
        {
            live.BeginBatch();
            for (int i = 0; i < 12; i++)
            {
                string key = "k" + random.Next(6);
                long time = batch * 10 + random.Next(10);
                if (random.Next(2) == 0) live.AddLeft(key, live.SidesForLeft(key), time);
                else live.AddRight(key, live.SidesForRight(key), time);
                everKept++;
            }

            live.ExpireBefore(batch * 10 - 20);
            live.EndBatch();
            var delta = new MessagePackWriter(256);
            live.WriteDelta(delta);
            ApplyDelta(rebuilt, delta);
            // The heap buffer reads the same deltas to the same contents: the layout is one, whatever the backend.
            ApplyDelta(heap, delta);
            string contents = Contents(live);
            Assert.Equal(contents, Contents(rebuilt));
            Assert.Equal(contents, Contents(heap));
            Assert.Equal(heap.KeyCount, live.KeyCount);
            Assert.Equal(heap.KeyCount, rebuilt.KeyCount);

            // Entries (what a test driver reads) list the same records, in the order kept, on both buffers.
            Assert.Equal(EntriesOf(heap), EntriesOf(live));

            SnapshotInto(live, restored, batch);
            Assert.Equal(contents, Contents(restored));
            Assert.Equal(heap.KeyCount, restored.KeyCount);
        }

        // Expiry removed most of what was ever kept, and kept what can still match.
        Assert.InRange(heap.RecordCount, 1, everKept / 2);
        Assert.DoesNotContain(Contents(live).Split(' ', ',', '[', ']').Where(t => long.TryParse(t, out _)).Select(long.Parse), t => t < 440);
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void Expiry_removes_a_record_once_nothing_that_is_not_late_can_match_it(string backend)
    {
        var store = NewStore(backend);
        store.BeginBatch();
        store.AddLeft("a", store.SidesForLeft("a"), 100); // matches rights up to 130
        store.AddRight("a", store.SidesForRight("a"), 110); // matches lefts from 80
        store.ExpireBefore(110);
        store.EndBatch();
        Assert.Equal("a:L[100]R[110]", Contents(store));
        Assert.Equal(1, store.KeyCount);
        Expire(store, 111);
        Assert.Equal("a:L[100]R[]", Contents(store));
        Assert.Equal(1, store.KeyCount);
        Expire(store, 131);
        Assert.Equal("", Contents(store));
        Assert.Equal(0, store.KeyCount);
    }

    private static void Expire(IJoinBuffer<string, long, long> store, long watermark)
    {
        store.BeginBatch();
        store.ExpireBefore(watermark);
        store.EndBatch();
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void Negative_times_expire_in_order(string backend)
    {
        // Times before 1970 are negative: the RocksDB index must order them below positive ones.
        var store = NewStore(backend);
        store.BeginBatch();
        store.AddRight("a", store.SidesForRight("a"), -5_000);
        store.AddRight("a", store.SidesForRight("a"), 7);
        store.AddRight("a", store.SidesForRight("a"), -10);
        store.EndBatch();
        Expire(store, -10);
        Assert.Equal("a:L[]R[7,-10]", Contents(store));
        Expire(store, 0);
        Assert.Equal("a:L[]R[7]", Contents(store));
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void Format_1_deltas_replace_or_append_a_keys_records(string backend)
    {
        var store = NewStore(backend);
        var first = new MessagePackWriter(64);
        first.WriteArrayHeader(2);
        WriteKeyArray(first, "a", [1, 2], [3], append: false);
        WriteKeyArray(first, "k1", [9], [], append: false);
        ApplyDelta(store, first);
        Assert.Equal("a:L[1,2]R[3] k1:L[9]R[]", Contents(store));
        Assert.Equal(2, store.KeyCount);

        var second = new MessagePackWriter(64);
        second.WriteArrayHeader(3);
        WriteKeyArray(second, "a", [5], [], append: false); // replaces a's records
        WriteKeyArray(second, "k1", [10], [11], append: true); // appends to k1's
        WriteKeyArray(second, "k2", [], [], append: false); // removes a key it never had
        ApplyDelta(store, second);
        Assert.Equal("a:L[5]R[] k1:L[9,10]R[11]", Contents(store));
        Assert.Equal(2, store.KeyCount);

        var third = new MessagePackWriter(64);
        third.WriteArrayHeader(1);
        WriteKeyArray(third, "a", [], [], append: false); // removes a
        ApplyDelta(store, third);
        Assert.Equal("k1:L[9,10]R[11]", Contents(store));
        Assert.Equal(1, store.KeyCount);
    }

    private static void WriteKeyArray(MessagePackWriter w, string key, long[] lefts, long[] rights, bool append)
    {
        w.WriteArrayHeader(append ? 4 : 3);
        w.Write(key);
        w.WriteArrayHeader(lefts.Length);
        foreach (var l in lefts) w.Write(l);
        w.WriteArrayHeader(rights.Length);
        foreach (var r in rights) w.Write(r);
        if (append) w.Write(true);
    }

    [Fact]
    public void A_RocksDB_buffer_loads_the_heap_buffers_snapshot_and_the_heap_refuses_a_file_list()
    {
        var heap = NewHeapStore();
        heap.BeginBatch();
        heap.AddLeft("a", heap.SidesForLeft("a"), 1);
        heap.AddRight("k3", heap.SidesForRight("k3"), 4);
        heap.AddRight("a", heap.SidesForRight("a"), 2);
        var rocks = NewStore("rocksdb");
        SnapshotInto(heap, rocks, 1);
        Assert.Equal("a:L[1]R[2] k3:L[]R[4]", Contents(rocks));
        Assert.Equal(2, rocks.KeyCount);
        Assert.Equal(SharedStateFileSet.Format, rocks.SnapshotFormat);

        var back = NewHeapStore();
        var e = Assert.Throws<InvalidOperationException>(() => SnapshotInto(rocks, back, 2));
        Assert.Contains("'paid'", e.Message);
        Assert.Contains("RocksDB", e.Message);
    }

    [Fact]
    public async Task Dump_state_of_a_RocksDB_buffer_equals_the_heap_buffers_line_for_line()
    {
        var random = TestRandom.Create(20261203, log);
        var heap = NewHeapStore(expires: false);
        var rocks = NewStore("rocksdb", expires: false);
        heap.BeginBatch();
        rocks.BeginBatch();
        for (int i = 0; i < 40; i++)
        {
            string key = Keys[random.Next(Keys.Length)];
            long time = random.Next(1000);
            bool left = random.Next(2) == 0;
            foreach (var store in new IJoinBuffer<string, long, long>[] { heap, rocks })
            {
                if (left) store.AddLeft(key, store.SidesForLeft(key), time);
                else store.AddRight(key, store.SidesForRight(key), time);
            }
        }

        rocks.EndBatch();
        var heapDump = new StringWriter();
        var hw = new MessagePackWriter(256);
        heap.WriteSnapshot(hw);
        StateDump.WriteJsonLines("stream-join", hw.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, heapDump);

        var rw = new MessagePackWriter(256);
        var files = new SharedStateFiles(_checkpoint);
        await files.UploadAsync(rocks.WriteSnapshot(rw, 1), default);
        var rocksDump = new StringWriter();
        PipelineDsl.RocksDb.RocksDbStateDump.Dump("stream-join", rw.ToArray(), files, "paid", new Dictionary<long, string>(), new JsonLines(rocksDump, int.MaxValue));

        static string[] Sorted(StringWriter w) => w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).Order(StringComparer.Ordinal).ToArray();
        var expected = Sorted(heapDump);
        Assert.True(expected.Length >= 5, $"{expected.Length} keys");
        Assert.Equal(expected, Sorted(rocksDump));
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void A_store_without_expiry_refuses_to_expire_and_writes_no_watermark(string backend)
    {
        var store = NewStore(backend, expires: false);
        store.BeginBatch();
        store.AddLeft("a", store.SidesForLeft("a"), 1);
        Assert.Throws<InvalidOperationException>(() => store.ExpireBefore(10));
        var w = new MessagePackWriter(64);
        store.WriteDelta(w);
        var r = new MessagePackReader(w.WrittenSpan);
        Assert.Equal(2, r.ReadMapHeader());
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void A_delta_field_from_a_newer_build_is_refused_naming_the_operator(string backend)
    {
        var w = new MessagePackWriter(64);
        w.WriteMapHeader(1);
        w.Write(9L);
        w.Write(0L);
        var store = NewStore(backend);
        var e = Assert.Throws<MessagePackException>(() =>
        {
            var r = new MessagePackReader(w.WrittenSpan);
            store.ApplyDelta(ref r);
        });
        Assert.Contains("'paid'", e.Message);
        Assert.Contains("unknown field 9", e.Message);
    }

    [Fact]
    public void Dump_state_writes_one_line_per_key_with_both_sides()
    {
        var store = NewHeapStore();
        store.BeginBatch();
        store.AddLeft("a", store.SidesForLeft("a"), 5);
        store.AddRight("a", store.SidesForRight("a"), 6);
        store.AddRight("a", store.SidesForRight("a"), 7);
        var w = new MessagePackWriter(64);
        store.WriteSnapshot(w);
        var output = new StringWriter();
        StateDump.WriteJsonLines("stream-join", w.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, output);
        Assert.Equal("{\"key\":\"a\",\"left\":[5],\"right\":[6,7]}", output.ToString().Trim());
    }
}
