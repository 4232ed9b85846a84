using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The pane store's contract (event-time window state): a snapshot restores exactly the panes; the updates and
/// removals of a sequence of batches, applied in order, give exactly the panes after them; a batch's delta holds
/// what it changed and nothing else.
/// </summary>
public class PaneStoreTests
{
    private readonly ITestOutputHelper _log;

    public PaneStoreTests(ITestOutputHelper log) => _log = log;

    private static PaneStore<string, long> NewStore() => new("windows", MessagePackFormatters.String!, MessagePackFormatters.Int64);

    private static string Contents(PaneStore<string, long> store) =>
        string.Join(" ", store.Panes.Select(p => p.Key + ":{" + string.Join(",", p.Value.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => e.Key + "=" + e.Value)) + "}"));

    [Fact]
    public void Updates_and_removals_applied_in_order_rebuild_exactly_the_panes_a_snapshot_holds()
    {
        var random = TestRandom.Create(20261201, _log);
        var live = NewStore();
        var rebuilt = NewStore();
        for (int batch = 0; batch < 50; batch++)
        {
            live.BeginBatch();
            for (int op = 0; op < 20; op++)
            {
                long start = 1000L * (batch + random.Next(4));
                var (entries, updated) = live.Open(start);
                string key = "k" + random.Next(6);
                entries[key] = entries.TryGetValue(key, out long v) ? v + 1 : 1;
                updated.Add(key);
            }

            // Panes behind the "watermark" are removed, the way a window fires them.
            while (live.Panes.Count > 0 && live.Panes.First().Key < 1000L * (batch - 1)) live.Remove(live.Panes.First().Key);

            var delta = new MessagePackWriter(256);
            live.WriteUpdates(delta);
            live.WriteRemoved(delta);
            var r = new MessagePackReader(delta.WrittenSpan);
            rebuilt.Read(ref r, replace: true);
            PaneStore<string, long>.RemoveStarts(ref r, rebuilt.Panes);
            Assert.Equal(Contents(live), Contents(rebuilt));
        }

        var snapshot = new MessagePackWriter(256);
        live.WriteAll(snapshot);
        var restored = NewStore();
        var reader = new MessagePackReader(snapshot.WrittenSpan);
        restored.Read(ref reader);
        Assert.Equal(Contents(live), Contents(restored));
        Assert.Equal(live.KeyCount, restored.KeyCount);
    }

    [Fact]
    public void A_batchs_delta_holds_only_its_changes_and_a_removed_pane_no_updates()
    {
        var store = NewStore();
        store.BeginBatch();
        var (a, au) = store.Open(0);
        a["x"] = 1;
        au.Add("x");
        var (b, bu) = store.Open(100);
        b["y"] = 2;
        bu.Add("y");
        store.BeginBatch();
        var (b2, bu2) = store.Open(100);
        b2["y"] = 3;
        bu2.Add("y");
        store.Remove(0);

        var w = new MessagePackWriter(64);
        store.WriteUpdates(w);
        store.WriteRemoved(w);
        var r = new MessagePackReader(w.WrittenSpan);
        Assert.Equal(1, r.ReadArrayHeader()); // only pane 100, only key y
        Assert.Equal(2, r.ReadArrayHeader());
        Assert.Equal(100, r.ReadInt64());
        Assert.Equal(1, r.ReadArrayHeader());
        Assert.Equal(2, r.ReadArrayHeader());
        Assert.Equal("y", r.ReadString());
        Assert.Equal(3, r.ReadInt64());
        Assert.Equal(1, r.ReadArrayHeader()); // removed: pane 0
        Assert.Equal(0, r.ReadInt64());
    }

    [Fact]
    public void A_snapshot_with_a_pane_or_key_twice_is_rejected_naming_the_operator()
    {
        var w = new MessagePackWriter(64);
        w.WriteArrayHeader(2);
        for (int i = 0; i < 2; i++)
        {
            w.WriteArrayHeader(2);
            w.Write(5L);
            w.WriteArrayHeader(0);
        }

        var e = Assert.Throws<MessagePackException>(() =>
        {
            var r = new MessagePackReader(w.WrittenSpan);
            NewStore().Read(ref r);
        });
        Assert.Contains("'windows'", e.Message);
        Assert.Contains("window 5 twice", e.Message);
    }
}
