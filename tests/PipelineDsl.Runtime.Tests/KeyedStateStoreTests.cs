using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The keyed state store's contract, which a backend must keep too: a snapshot restores exactly the state; the
/// deltas of a sequence of batches, applied to the state before them, give exactly the state after; a batch's
/// delta holds what it changed and nothing else.
/// </summary>
public class KeyedStateStoreTests
{
    private readonly ITestOutputHelper _log;

    public KeyedStateStoreTests(ITestOutputHelper log) => _log = log;

    private static KeyedStateStore<string, long> NewStore(int shards) =>
        new("counts", shards, MessagePackFormatters.String!, MessagePackFormatters.Int64);

    private static SortedDictionary<string, (long Value, long LastSeen)> Contents(KeyedStateStore<string, long> store)
    {
        var w = new MessagePackWriter(256);
        store.WriteSnapshot(w);
        var r = new MessagePackReader(w.WrittenSpan);
        var result = new SortedDictionary<string, (long, long)>(StringComparer.Ordinal);
        int n = r.ReadArrayHeader();
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(3, r.ReadArrayHeader());
            string key = r.ReadString()!;
            result.Add(key, (r.ReadInt64(), r.ReadInt64()));
        }

        return result;
    }

    private static void Put(KeyedStateStore<string, long> store, string key, long value, long batch)
    {
        int hash = store.HashOf(key);
        int shard = store.ShardOf(hash);
        ref var slot = ref store.GetOrAdd(shard, key, hash, out bool existed, out int index);
        slot.Value = value;
        store.Written(shard, ref slot, index, existed, batch);
    }

    private static void Delete(KeyedStateStore<string, long> store, string key)
    {
        int hash = store.HashOf(key);
        int shard = store.ShardOf(hash);
        store.GetOrAdd(shard, key, hash, out bool existed, out int index);
        store.RemoveAt(shard, index, existed);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Deltas_applied_in_order_rebuild_exactly_the_state_a_snapshot_holds(int shards)
    {
        var random = TestRandom.Create(20261201, _log);
        var live = NewStore(shards);
        var rebuilt = NewStore(shards == 1 ? 2 : 1); // a restore may shard differently: shards are never stored
        for (long batch = 0; batch < 40; batch++)
        {
            live.BeginBatch();
            for (int op = 0; op < 30; op++)
            {
                string key = "k" + random.Next(50);
                if (random.Next(5) == 0) Delete(live, key);
                else Put(live, key, random.Next(1000), batch);
            }

            if (batch % 7 == 6)
            {
                var expired = new List<(string, long)>();
                live.Expire(batch, 3, expired);
            }

            var delta = new MessagePackWriter(256);
            live.WriteDelta(delta, batch);
            var reader = new MessagePackReader(delta.WrittenSpan);
            rebuilt.ApplyDelta(ref reader, migrate: null);
            Assert.Equal(Contents(live), Contents(rebuilt));
        }

        var snapshot = new MessagePackWriter(256);
        live.WriteSnapshot(snapshot);
        var restored = NewStore(2);
        var r = new MessagePackReader(snapshot.WrittenSpan);
        restored.RestoreSnapshot(ref r, migrate: null);
        Assert.Equal(Contents(live), Contents(restored));
        Assert.Equal(live.Count, restored.Count);
    }

    [Fact]
    public void A_delta_holds_only_what_its_batch_changed_and_a_key_removed_then_written_once()
    {
        var store = NewStore(1);
        store.BeginBatch();
        Put(store, "a", 1, 0);
        Put(store, "b", 2, 0);
        store.BeginBatch();
        Put(store, "b", 3, 1);
        Delete(store, "a");
        Delete(store, "b");
        Put(store, "b", 4, 1);
        Put(store, "b", 5, 1);

        var w = new MessagePackWriter(64);
        store.WriteDelta(w, 1);
        var r = new MessagePackReader(w.WrittenSpan);
        Assert.Equal(2, r.ReadArrayHeader());
        Assert.Equal(2, r.ReadArrayHeader());
        Assert.Equal("a", r.ReadString());
        Assert.Equal("b", r.ReadString());
        Assert.Equal(1, r.ReadArrayHeader()); // b once, with its last value
        Assert.Equal(3, r.ReadArrayHeader());
        Assert.Equal("b", r.ReadString());
        Assert.Equal(5, r.ReadInt64());
        Assert.Equal(1, r.ReadInt64());
    }

    [Fact]
    public void Expiry_removes_idle_keys_into_the_delta_and_returns_their_last_values()
    {
        var store = NewStore(2);
        store.BeginBatch();
        Put(store, "old", 7, 0);
        store.BeginBatch();
        Put(store, "new", 8, 3);
        var expired = new List<(string Key, long Value)>();
        store.Expire(3, 3, expired);
        Assert.Equal(new[] { ("old", 7L) }, expired);
        Assert.Equal(new[] { "new" }, Contents(store).Keys);

        var w = new MessagePackWriter(64);
        store.WriteDelta(w, 3);
        var rebuilt = NewStore(1);
        rebuilt.BeginBatch();
        Put(rebuilt, "old", 7, 0);
        var r = new MessagePackReader(w.WrittenSpan);
        rebuilt.ApplyDelta(ref r, null);
        Assert.Equal(Contents(store), Contents(rebuilt));
    }

    [Fact]
    public void A_snapshot_with_a_repeated_key_is_rejected()
    {
        var w = new MessagePackWriter(64);
        w.WriteArrayHeader(2);
        for (int i = 0; i < 2; i++)
        {
            w.WriteArrayHeader(3);
            w.Write("same");
            w.Write(1L);
            w.Write(0L);
        }

        var store = NewStore(1);
        var e = Assert.Throws<MessagePackException>(() =>
        {
            var r = new MessagePackReader(w.WrittenSpan);
            store.RestoreSnapshot(ref r, null);
        });
        Assert.Contains("'counts'", e.Message);
    }
}
