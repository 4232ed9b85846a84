using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The stream join's store: deltas applied in order rebuild exactly what the live store keeps (the appends and the
/// expiry both), a snapshot restores it, and dump-state reads its layout.
/// </summary>
public class JoinBufferStoreTests(ITestOutputHelper log)
{
    // Left and right records are times; a left record matches rights up to 30 later, a right one lefts up to 30 earlier.
    private static JoinBufferStore<string, long, long> NewStore(bool expires = true) =>
        new("paid", MessagePackFormatters.String!, MessagePackFormatters.Int64, MessagePackFormatters.Int64,
            expires ? l => l + 30 : null, expires ? r => r : null);

    /// <summary>What a store keeps, read through a snapshot into a fresh store, in a canonical order.</summary>
    private static string Contents(JoinBufferStore<string, long, long> store)
    {
        var w = new MessagePackWriter(256);
        store.WriteSnapshot(w);
        var r = new MessagePackReader(w.WrittenSpan);
        var lines = new List<string>();
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

        lines.Sort(StringComparer.Ordinal);
        return string.Join(" ", lines);
    }

    [Fact]
    public void Deltas_applied_in_order_rebuild_exactly_what_the_live_store_keeps()
    {
        var random = TestRandom.Create(20261202, log);
        var live = NewStore();
        var rebuilt = NewStore();
        var restored = NewStore();
        long everKept = 0;
        for (int batch = 0; batch < 50; batch++)
        {
            live.BeginBatch();
            for (int i = 0; i < 12; i++)
            {
                string key = "k" + random.Next(6);
                long time = batch * 10 + random.Next(10);
                if (random.Next(2) == 0) live.AddLeft(key, live.SidesOf(key), time);
                else live.AddRight(key, live.SidesOf(key), time);
                everKept++;
            }

            live.ExpireBefore(batch * 10 - 20);
            var delta = new MessagePackWriter(256);
            live.WriteDelta(delta);
            var r = new MessagePackReader(delta.WrittenSpan);
            rebuilt.ApplyDelta(ref r);
            Assert.Equal(Contents(live), Contents(rebuilt));
            Assert.Equal(live.RecordCount, rebuilt.RecordCount);

            var snapshot = new MessagePackWriter(256);
            live.WriteSnapshot(snapshot);
            var s = new MessagePackReader(snapshot.WrittenSpan);
            restored.RestoreSnapshot(ref s);
            Assert.Equal(Contents(live), Contents(restored));
        }

        // Expiry removed most of what was ever kept, and kept what can still match.
        Assert.InRange(live.RecordCount, 1, everKept / 2);
        Assert.DoesNotContain(Contents(live).Split(' ', ',', '[', ']').Where(t => long.TryParse(t, out _)).Select(long.Parse), t => t < 440);
    }

    [Fact]
    public void Expiry_removes_a_record_once_nothing_that_is_not_late_can_match_it()
    {
        var store = NewStore();
        store.BeginBatch();
        store.AddLeft("a", store.SidesOf("a"), 100); // matches rights up to 130
        store.AddRight("a", store.SidesOf("a"), 110); // matches lefts from 80
        store.ExpireBefore(110);
        Assert.Equal("a:L[100]R[110]", Contents(store));
        store.ExpireBefore(111);
        Assert.Equal("a:L[100]R[]", Contents(store));
        store.ExpireBefore(131);
        Assert.Equal("", Contents(store));
        Assert.Equal(0, store.KeyCount);
    }

    [Fact]
    public void A_store_without_expiry_refuses_to_expire_and_writes_no_watermark()
    {
        var store = NewStore(expires: false);
        store.BeginBatch();
        store.AddLeft("a", store.SidesOf("a"), 1);
        Assert.Throws<InvalidOperationException>(() => store.ExpireBefore(10));
        var w = new MessagePackWriter(64);
        store.WriteDelta(w);
        var r = new MessagePackReader(w.WrittenSpan);
        Assert.Equal(2, r.ReadMapHeader());
    }

    [Fact]
    public void A_delta_field_from_a_newer_build_is_refused_naming_the_operator()
    {
        var w = new MessagePackWriter(64);
        w.WriteMapHeader(1);
        w.Write(9L);
        w.Write(0L);
        var store = NewStore();
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
        var store = NewStore();
        store.BeginBatch();
        store.AddLeft("a", store.SidesOf("a"), 5);
        store.AddRight("a", store.SidesOf("a"), 6);
        store.AddRight("a", store.SidesOf("a"), 7);
        var w = new MessagePackWriter(64);
        store.WriteSnapshot(w);
        var output = new StringWriter();
        StateDump.WriteJsonLines("stream-join", w.WrittenSpan, new Dictionary<long, string>(), int.MaxValue, output);
        Assert.Equal("{\"key\":\"a\",\"left\":[5],\"right\":[6,7]}", output.ToString().Trim());
    }
}
