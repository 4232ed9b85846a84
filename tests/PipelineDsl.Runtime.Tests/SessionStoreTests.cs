using PipelineDsl.Checkpointing;
using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The session store's contract, on the heap and in RocksDB: deltas applied in order rebuild exactly the sessions a
/// snapshot holds, the two stores agree batch by batch, sessions come due in end order, and dump-state reads both alike.
/// </summary>
public sealed class SessionStoreTests(ITestOutputHelper log) : IDisposable
{
    private readonly string _rocksDirectory = Path.Combine(Path.GetTempPath(), "pdsl-sessions-" + Guid.NewGuid().ToString("N"));
    private readonly List<IDisposable> _stores = new();
    private readonly InMemoryCheckpointStore _checkpoint = new();

    public void Dispose()
    {
        foreach (var s in _stores) s.Dispose();
        if (Directory.Exists(_rocksDirectory)) Directory.Delete(_rocksDirectory, recursive: true);
    }

    private ISessionStore<string, long> NewStore(string backend)
    {
        StateBackend chosen = backend == "rocksdb" ? new RocksDbStateBackend(_rocksDirectory) : StateBackend.InMemory;
        var store = chosen.CreateSessionStore(new SessionStoreSpec<string, long>("session-tests", "sessions", MessagePackFormatters.String!, MessagePackFormatters.Int64));
        _stores.Add(store);
        return store;
    }

    /// <summary>Takes a snapshot of <paramref name="from"/> (uploading its files) and restores it into <paramref name="into"/>.</summary>
    private void SnapshotInto(ISessionStore<string, long> from, ISessionStore<string, long> into, long batchId)
    {
        var w = new MessagePackWriter(256);
        var files = new SharedStateFiles(_checkpoint);
        files.UploadAsync(from.WriteSnapshot(w, batchId), default).GetAwaiter().GetResult();
        into.RestoreSnapshot(w.ToArray(), from.SnapshotFormat, files);
    }

    /// <summary>What a store holds, read through a snapshot into a fresh store of its backend and taken due all at once.</summary>
    private string Contents(ISessionStore<string, long> store, string backend)
    {
        var copy = NewStore(backend);
        SnapshotInto(store, copy, 0);
        copy.BeginBatch();
        var lines = new List<string>();
        while (copy.TryTakeDue(long.MaxValue, out var key, out var sessions))
            lines.Add(key + ":" + string.Join(",", sessions!.Select(s => $"[{s.Start},{s.End})={s.Value}")));
        lines.Sort(StringComparer.Ordinal);
        Assert.Equal(lines.Count, copy.KeyCount);
        return string.Join(" ", lines);
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void Deltas_applied_in_order_rebuild_exactly_the_sessions_a_snapshot_holds(string backend)
    {
        var random = TestRandom.Create(20261201, log);
        var live = NewStore(backend);
        var rebuilt = NewStore(backend);
        var heap = NewStore("in-memory");
        for (int batch = 0; batch < 40; batch++)
        {
            live.BeginBatch();
            for (int op = 0; op < 10; op++)
            {
                string key = "k" + random.Next(5);
                var sessions = live.SessionsOf(key);
                long start = batch * 100 + random.Next(100);
                sessions.Add(new Session<long> { Start = start, End = start + 50, Value = random.Next(1000) });
                sessions.Sort((a, b) => a.Start.CompareTo(b.Start));
                live.Changed(key);
                live.DueAt(key, start + 50);
            }

            // Fire everything that ended before this batch's window, as a watermark would.
            var requeue = new List<(string, long)>();
            while (live.TryTakeDue(batch * 100 - 100, out var key, out var sessions))
            {
                sessions!.RemoveAll(s => s.End <= batch * 100 - 100);
                live.Changed(key);
                live.Settle(key, sessions, requeue);
            }

            live.Requeue(requeue);
            live.EndBatch();
            var delta = new MessagePackWriter(256);
            live.WriteDelta(delta);
            var r = new MessagePackReader(delta.WrittenSpan);
            Assert.False(SessionStore<string, long>.IsWholeState(ref r));
            rebuilt.ApplyDelta(ref r);
            // The heap store reads the same deltas to the same sessions: the layout is one, whatever the backend.
            var h = new MessagePackReader(delta.WrittenSpan);
            heap.ApplyDelta(ref h);
            string contents = Contents(live, backend);
            Assert.Equal(contents, Contents(rebuilt, backend));
            Assert.Equal(contents, Contents(heap, "in-memory"));
            Assert.Equal(heap.KeyCount, live.KeyCount);
            Assert.Equal(heap.KeyCount, rebuilt.KeyCount);
        }

        Assert.NotEqual("", Contents(live, backend));
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void Keys_come_due_in_the_order_of_their_earliest_session_end(string backend)
    {
        var store = NewStore(backend);
        store.BeginBatch();
        foreach (var (key, end) in new[] { ("late", 300L), ("early", 100L), ("middle", 200L), ("before-1970", -5L) })
        {
            store.SessionsOf(key).Add(new Session<long> { Start = end - 10, End = end, Value = 1 });
            store.Changed(key);
            store.DueAt(key, end);
        }

        var due = new List<string>();
        while (store.TryTakeDue(250, out var key, out _)) due.Add(key);
        Assert.Equal(new[] { "before-1970", "early", "middle" }, due);
    }

    [Theory]
    [InlineData("in-memory")]
    [InlineData("rocksdb")]
    public void A_format_1_delta_replaces_the_whole_state(string backend)
    {
        var store = NewStore(backend);
        store.BeginBatch();
        store.SessionsOf("gone").Add(new Session<long> { Start = 0, End = 10, Value = 1 });
        store.Changed("gone");
        store.DueAt("gone", 10);
        store.EndBatch();
        var whole = new MessagePackWriter(64);
        whole.WriteArrayHeader(1);
        whole.WriteArrayHeader(2);
        whole.Write("kept");
        whole.WriteArrayHeader(1);
        whole.WriteArrayHeader(3);
        whole.Write(5L);
        whole.Write(15L);
        whole.Write(3L);
        var r = new MessagePackReader(whole.WrittenSpan);
        store.ApplyDelta(ref r);
        Assert.Equal("kept:[5,15)=3", Contents(store, backend));
        Assert.Equal(1, store.KeyCount);
    }

    [Fact]
    public async Task Dump_state_of_a_RocksDB_store_equals_the_heap_stores_line_for_line()
    {
        var heap = NewStore("in-memory");
        var rocks = NewStore("rocksdb");
        foreach (var store in new[] { heap, rocks })
        {
            store.BeginBatch();
            store.SessionsOf("a").Add(new Session<long> { Start = 0, End = 50, Value = 7 });
            store.SessionsOf("a").Add(new Session<long> { Start = 100, End = 150, Value = 8 });
            store.SessionsOf("b").Add(new Session<long> { Start = 10, End = 60, Value = 9 });
            store.Changed("a");
            store.Changed("b");
            store.EndBatch();
        }

        var hw = new MessagePackWriter(256);
        heap.WriteSnapshot(hw, 1);
        var heapDump = new StringWriter();
        StateDump.WriteJsonLines("session-window", hw.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, heapDump);
        var rw = new MessagePackWriter(256);
        var files = new SharedStateFiles(_checkpoint);
        await files.UploadAsync(rocks.WriteSnapshot(rw, 1), default);
        var rocksDump = new StringWriter();
        PipelineDsl.RocksDb.RocksDbStateDump.Dump("session-window", rw.ToArray(), files, "sessions", new Dictionary<long, string>(), new JsonLines(rocksDump, int.MaxValue));

        static string[] Sorted(StringWriter w) => w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(2, Sorted(heapDump).Length);
        Assert.Equal(Sorted(heapDump), Sorted(rocksDump));
    }
}

/// <summary>dump-state reads each layout with the dumper beside its writer.</summary>
public class StateDumpTests
{
    [Fact]
    public void Sessions_are_dumped_one_line_per_key_with_their_sessions()
    {
        var store = new SessionStore<string, long>("sessions", MessagePackFormatters.String!, MessagePackFormatters.Int64);
        store.BeginBatch();
        store.SessionsOf("a").Add(new Session<long> { Start = 0, End = 50, Value = 7 });
        store.SessionsOf("a").Add(new Session<long> { Start = 100, End = 150, Value = 8 });
        store.SessionsOf("b").Add(new Session<long> { Start = 10, End = 60, Value = 9 });
        var w = new MessagePackWriter(64);
        store.WriteSnapshot(w);
        var output = new StringWriter();
        StateDump.WriteJsonLines("session-window", w.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, output);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, lines.Count);
        var a = lines.Single(l => l.GetProperty("key").GetString() == "a");
        Assert.Equal(new[] { (0L, 50L, 7L), (100L, 150L, 8L) },
            a.GetProperty("sessions").EnumerateArray().Select(s => (s.GetProperty("start").GetInt64(), s.GetProperty("end").GetInt64(), s.GetProperty("value").GetInt64())));
    }

    [Fact]
    public void A_batch_windows_panes_are_dumped_with_their_batches()
    {
        var w = new MessagePackWriter(64);
        w.WriteArrayHeader(1);
        w.WriteArrayHeader(2);
        w.Write("k");
        w.WriteArrayHeader(2);
        foreach (var (batch, value) in new[] { (4L, 10L), (5L, 11L) })
        {
            w.WriteArrayHeader(2);
            w.Write(batch);
            w.Write(value);
        }

        var output = new StringWriter();
        StateDump.WriteJsonLines("window", w.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, output);
        Assert.Equal("{\"key\":\"k\",\"panes\":[{\"batch\":4,\"value\":10},{\"batch\":5,\"value\":11}]}", output.ToString().Trim());
    }

    [Fact]
    public void A_limit_cuts_the_lines_and_an_unknown_layout_is_written_as_stored()
    {
        var w = new MessagePackWriter(64);
        w.WriteArrayHeader(3);
        for (int i = 0; i < 3; i++) w.Write((long)i);
        var output = new StringWriter();
        StateDump.WriteJsonLines("a-newer-kind", w.WrittenSpan, new Dictionary<long, string>(), 2, output);
        Assert.Equal(new[] { "{\"kind\":\"a-newer-kind\",\"entry\":0}", "{\"kind\":\"a-newer-kind\",\"entry\":1}" }, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
