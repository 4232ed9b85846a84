using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>
/// Keyed state of one operator, in memory: keys spread over shards (one per core, so that shards are updated in
/// parallel without shared writes), the slots each batch wrote and the keys it removed (so a batch's delta costs
/// what the batch changed, not what the state holds), and the one format of its snapshot and delta.
/// </summary>
/// <remarks>
/// <para>
/// This is the seam a state backend plugs into: an operator hashes a key once (<see cref="HashOf"/>, which also
/// picks its shard), reads and writes its slot through <see cref="GetOrAdd"/>, <see cref="Written"/> and
/// <see cref="RemoveAt"/>, and the checkpoint reads and writes through the snapshot and delta methods. A backend
/// that keeps state off the heap (RocksDB) serves the same calls from a per-batch cache of the keys the batch
/// touches, written back when the batch commits. The class is sealed so that the per-record calls are direct (the
/// JIT inlines them) on the in-memory path.
/// </para>
/// <para>
/// Format (<see cref="Format"/> 1): a snapshot is an array of <c>[key, value, lastSeen]</c> entries; a delta is
/// <c>[[removed keys], [touched entries]]</c>, entries as in a snapshot. Values older than the operator's
/// version are decoded by its migration (<see cref="StateDecoder{TState}"/>).
/// </para>
/// </remarks>
internal sealed class KeyedStateStore<TKey, TValue> where TKey : notnull
{
    /// <summary>The layout written by <see cref="WriteSnapshot"/> and <see cref="WriteDelta"/> (see the remarks).</summary>
    public const int Format = 1;

    private readonly string _operatorId;
    private readonly IMessagePackFormatter<TKey> _keyFormatter;
    private readonly IMessagePackFormatter<TValue> _valueFormatter;
    private readonly StateTable<TKey, TValue>[] _shards;

    // Keys removed and slots written during the current batch, per shard. A slot index stays valid for the whole
    // batch: the table reuses a removed slot only after the batch (StateTable.ReleaseRemoved).
    private readonly List<TKey>[] _removed;
    private readonly SlotList[] _touched;

    // Per-shard delta buffers, kept between batches.
    private MessagePackWriter[] _shardWriters = Array.Empty<MessagePackWriter>();
    private int[] _shardEntries = Array.Empty<int>();

    public KeyedStateStore(string operatorId, int shards, IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<TValue> valueFormatter)
    {
        _operatorId = operatorId;
        _keyFormatter = keyFormatter;
        _valueFormatter = valueFormatter;
        _shards = Enumerable.Range(0, Math.Max(1, shards)).Select(_ => new StateTable<TKey, TValue>(null)).ToArray();
        _removed = _shards.Select(_ => new List<TKey>()).ToArray();
        _touched = _shards.Select(_ => new SlotList()).ToArray();
    }

    public int ShardCount => _shards.Length;

    public long Count
    {
        get
        {
            long count = 0;
            foreach (var shard in _shards) count += shard.Count;
            return count;
        }
    }

    /// <summary>The hash of <paramref name="key"/>, computed once per record: it picks the shard (<see cref="ShardOf(int)"/>) and the slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int HashOf(TKey key) => _shards[0].HashOf(key);

    /// <summary>
    /// The shard that holds a key of <paramref name="hash"/>. Hash codes of strings differ per process: shards are
    /// rebuilt on restore, never stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ShardOf(int hash) => _shards.Length == 1 ? 0 : (int)((uint)hash % (uint)_shards.Length);

    /// <summary>See <see cref="StateTable{TKey, TValue}.PrefetchBucket"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchBucket(int shard, int hash) => _shards[shard].PrefetchBucket(hash);

    /// <summary>See <see cref="StateTable{TKey, TValue}.PrefetchSlot"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchSlot(int shard, int hash) => _shards[shard].PrefetchSlot(hash);

    /// <summary>Keys the current batch read or wrote (each is in its delta).</summary>
    public long TouchedCount
    {
        get
        {
            long count = 0;
            foreach (var touched in _touched) count += touched.Items.Length;
            return count;
        }
    }

    /// <summary>Starts a batch: forgets what the previous batch changed, and frees the slots it removed.</summary>
    public void BeginBatch()
    {
        foreach (var removed in _removed) removed.Clear();
        foreach (var touched in _touched) touched.Clear();
        foreach (var shard in _shards) shard.ReleaseRemoved();
    }

    /// <summary>
    /// The slot of <paramref name="key"/> (of <paramref name="hash"/>) in <paramref name="shard"/>, added (default)
    /// when missing; one hash lookup. A caller that adds a slot must then either write it (<see cref="Written"/>) or
    /// remove it (<see cref="RemoveAt"/>). Only the shard's own worker may call this during a batch.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref StateSlot<TKey, TValue> GetOrAdd(int shard, TKey key, int hash, out bool existed, out int index) =>
        ref _shards[shard].GetOrAdd(key, hash, out existed, out index);

    /// <summary>Records that <paramref name="slot"/> (at <paramref name="index"/>) was written in <paramref name="batchId"/>: it goes into the batch's delta once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Written(int shard, ref StateSlot<TKey, TValue> slot, int index, bool existed, long batchId)
    {
        if (!existed || slot.LastSeen != batchId) _touched[shard].Add(index);
        slot.LastSeen = batchId;
    }

    /// <summary>Removes the key in slot <paramref name="index"/>; when it <paramref name="existed"/> before this batch's call, the removal goes into the delta.</summary>
    public void RemoveAt(int shard, int index, bool existed)
    {
        var table = _shards[shard];
        if (existed) _removed[shard].Add(table[index].Key);
        table.RemoveAt(index);
    }

    /// <summary>Removes every key not written for <paramref name="idleBatches"/> batches up to <paramref name="batchId"/>; adds them to <paramref name="expired"/>.</summary>
    public void Expire(long batchId, long idleBatches, List<(TKey Key, TValue Value)> expired)
    {
        for (int s = 0; s < _shards.Length; s++)
        {
            var slots = _shards[s].Slots;
            for (int i = 0; i < slots.Length; i++)
            {
                ref var slot = ref slots[i];
                if (!slot.IsLive || batchId - slot.LastSeen < idleBatches) continue;
                expired.Add((slot.Key, slot.Value));
                RemoveAt(s, i, existed: true);
            }
        }
    }

    public void Clear()
    {
        foreach (var shard in _shards) shard.Clear();
    }

    /// <summary>Every live entry with the batch that last wrote it: for reading state between batches (a test driver), not for the hot path.</summary>
    public IEnumerable<(TKey Key, TValue Value, long LastSeenBatch)> Entries()
    {
        foreach (var shard in _shards)
        {
            for (int i = 0; i < shard.Slots.Length; i++)
            {
                var slot = shard[i];
                if (slot.IsLive) yield return (slot.Key, slot.Value, slot.LastSeen);
            }
        }
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(checked((int)Count));
        foreach (var shard in _shards)
        {
            foreach (ref var slot in shard.Slots)
            {
                if (slot.IsLive) WriteEntry(writer, ref slot);
            }
        }
    }

    private void WriteEntry(MessagePackWriter writer, ref StateSlot<TKey, TValue> slot)
    {
        writer.WriteArrayHeader(3);
        _keyFormatter.Serialize(writer, slot.Key);
        _valueFormatter.Serialize(writer, slot.Value);
        writer.Write(slot.LastSeen);
    }

    /// <summary>Replaces all state with a snapshot's entries; <paramref name="migrate"/> decodes values of an older version.</summary>
    public void RestoreSnapshot(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        Clear();
        int count = reader.ReadArrayHeader();
        foreach (var shard in _shards) shard.EnsureCapacity(count / _shards.Length + 1);
        for (int i = 0; i < count; i++)
        {
            var (key, value, lastSeen) = ReadEntry(ref reader, migrate);
            if (key is null) throw new MessagePackException($"The snapshot of operator '{_operatorId}' holds a null key.");
            int hash = HashOf(key);
            ref var slot = ref _shards[ShardOf(hash)].GetOrAdd(key, hash, out bool existed, out _);
            if (existed) throw new MessagePackException($"The snapshot of operator '{_operatorId}' holds a repeated key.");
            slot.Value = value;
            slot.LastSeen = lastSeen;
        }
    }

    private (TKey Key, TValue Value, long LastSeen) ReadEntry(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A state entry of operator '{_operatorId}' is not a [key, value, lastSeen] triple.");
        TKey key = _keyFormatter.Deserialize(ref reader);
        var value = migrate is null ? _valueFormatter.Deserialize(ref reader) : migrate(ref reader);
        return (key, value, reader.ReadInt64());
    }

    /// <summary>The delta of batch <paramref name="batchId"/>: the keys it removed, then every entry it wrote (with its last-seen batch).</summary>
    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        writer.WriteArrayHeader(2);
        int removedCount = 0;
        foreach (var removed in _removed) removedCount += removed.Count;
        writer.WriteArrayHeader(removedCount);
        foreach (var removed in _removed)
            foreach (var key in removed) _keyFormatter.Serialize(writer, key);

        // Each shard serializes its own touched entries on its own core; the parts are then appended in
        // shard order behind the one array header (the order of entries in a delta does not matter).
        if (_shardWriters.Length != _shards.Length)
        {
            _shardWriters = _shards.Select(_ => new MessagePackWriter(1 << 12)).ToArray();
            _shardEntries = new int[_shards.Length];
        }

        if (_shards.Length == 1) WriteTouched(0, batchId);
        else Parallel.For(0, _shards.Length, shard => WriteTouched(shard, batchId));
        writer.WriteArrayHeader(_shardEntries.Sum());
        foreach (var w in _shardWriters) writer.WriteRaw(w.WrittenSpan);
    }

    private void WriteTouched(int shard, long batchId)
    {
        var w = _shardWriters[shard];
        w.Clear();
        var table = _shards[shard];
        int entries = 0;
        var touched = _touched[shard].Items;
        for (int t = 0; t < touched.Length; t++)
        {
            // Hint the slots, then their keys, some entries ahead (see StateTable.PrefetchBucket).
            if (t + 16 < touched.Length) table.PrefetchSlotAt(touched[t + 16]);
            if (t + 8 < touched.Length) table.PrefetchKeyAt(touched[t + 8]);
            int index = touched[t];
            // A slot whose key was removed later in the batch is dead (its removal is in the delta); a key removed
            // and added again has a new slot, touched once.
            ref var slot = ref table[index];
            if (!slot.IsLive || slot.LastSeen != batchId) continue;
            WriteEntry(w, ref slot);
            entries++;
        }

        _shardEntries[shard] = entries;
    }

    /// <summary>Applies a delta written by <see cref="WriteDelta"/>; <paramref name="migrate"/> decodes values of an older version.</summary>
    public void ApplyDelta(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"The delta of operator '{_operatorId}' is not a [removed, touched] pair.");
        int removed = reader.ReadArrayHeader();
        for (int i = 0; i < removed; i++)
        {
            TKey key = _keyFormatter.Deserialize(ref reader);
            if (key is null) continue;
            int hash = HashOf(key);
            var table = _shards[ShardOf(hash)];
            int index = table.Find(key, hash);
            if (index >= 0) table.RemoveAt(index);
        }

        int touched = reader.ReadArrayHeader();
        for (int i = 0; i < touched; i++)
        {
            var (key, value, lastSeen) = ReadEntry(ref reader, migrate);
            if (key is null) throw new MessagePackException($"The delta of operator '{_operatorId}' holds a null key.");
            int hash = HashOf(key);
            ref var slot = ref _shards[ShardOf(hash)].GetOrAdd(key, hash, out _, out _);
            slot.Value = value;
            slot.LastSeen = lastSeen;
        }

        // Deltas are applied between batches: slots removed here are free for the next.
        foreach (var shard in _shards) shard.ReleaseRemoved();
    }
}

/// <summary>
/// A growable list of slot indices, cleared (capacity kept) between batches. One per shard, written by that shard's
/// worker for about every record it processes: its count sits alone on its cache lines (<see cref="PaddedInt"/>), or the
/// lists of two shards, allocated side by side, would make both cores write the same line (false sharing).
/// </summary>
internal sealed class SlotList
{
    private int[] _items = new int[64];
    private PaddedInt _count;

    public ReadOnlySpan<int> Items => _items.AsSpan(0, _count.Value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int index)
    {
        int count = _count.Value;
        if (count == _items.Length) Array.Resize(ref _items, _items.Length * 2);
        _items[count] = index;
        _count.Value = count + 1;
    }

    public void Clear() => _count.Value = 0;
}

/// <summary>An int with a cache line of padding on either side.</summary>
[StructLayout(LayoutKind.Explicit, Size = 136)]
internal struct PaddedInt
{
    [FieldOffset(64)] public int Value;
}

/// <summary>Reads the keyed entries' layout (<see cref="KeyedStateStore{TKey, TValue}.Format"/> 1) for <c>dump-state</c>: one line per key.</summary>
internal static class KeyedStateLayout
{
    public static void Dump(ref MessagePackReader r, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        int count = r.ReadArrayHeader();
        for (int i = 0; i < count && !lines.Full; i++)
        {
            var json = lines.Begin();
            int parts = r.ReadArrayHeader();
            json.WritePropertyName("key");
            Json.Write(ref r, json, null);
            json.WritePropertyName("value");
            Json.Write(ref r, json, fieldNames);
            if (parts > 2) json.WriteNumber("lastSeenBatch", r.ReadInt64());
            lines.End();
        }
    }
}
