using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>One key's state and the batch it was last written in (for idle expiry and deltas).</summary>
internal struct StateEntry<TValue>
{
    public TValue Value;
    public long LastSeen;
}

/// <summary>
/// Keyed state of one operator, in memory: keys spread over shards (one per core, so that shards are updated in
/// parallel without shared writes), the keys each batch wrote and removed (so a batch's delta costs what the
/// batch changed, not what the state holds), and the one format of its snapshot and delta.
/// </summary>
/// <remarks>
/// <para>
/// This is the seam a state backend plugs into: an operator reads and writes through
/// <see cref="GetOrAdd"/>, <see cref="Written"/> and <see cref="Remove"/>, and the checkpoint reads and writes
/// through the snapshot and delta methods. A backend that keeps state off the heap (RocksDB) serves the same
/// calls from a per-batch cache of the keys the batch touches, written back when the batch commits. The class is
/// sealed so that the per-record calls are direct (the JIT inlines them) on the in-memory path.
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
    private readonly Dictionary<TKey, StateEntry<TValue>>[] _shards;

    // Keys removed and keys written during the current batch, per shard.
    private readonly List<TKey>[] _removed;
    private readonly List<TKey>[] _touched;

    // Per-shard delta buffers, kept between batches.
    private MessagePackWriter[] _shardWriters = Array.Empty<MessagePackWriter>();
    private int[] _shardEntries = Array.Empty<int>();

    public KeyedStateStore(string operatorId, int shards, IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<TValue> valueFormatter)
    {
        _operatorId = operatorId;
        _keyFormatter = keyFormatter;
        _valueFormatter = valueFormatter;
        _shards = Enumerable.Range(0, Math.Max(1, shards)).Select(_ => new Dictionary<TKey, StateEntry<TValue>>()).ToArray();
        _removed = _shards.Select(_ => new List<TKey>()).ToArray();
        _touched = _shards.Select(_ => new List<TKey>()).ToArray();
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

    /// <summary>The shard that holds <paramref name="key"/> (hash codes of strings differ per process: shards are rebuilt on restore, never stored).</summary>
    public int ShardOf(TKey key) => _shards.Length == 1 ? 0 : (key.GetHashCode() & int.MaxValue) % _shards.Length;

    /// <summary>Starts a batch: forgets what the previous batch changed.</summary>
    public void BeginBatch()
    {
        foreach (var removed in _removed) removed.Clear();
        foreach (var touched in _touched) touched.Clear();
    }

    /// <summary>
    /// The entry of <paramref name="key"/>, added (default) when missing; one hash lookup. A caller that adds an
    /// entry must then either write it (<see cref="Written"/>) or <see cref="Remove"/> it. Only the shard's own
    /// worker may call this during a batch.
    /// </summary>
    public ref StateEntry<TValue> GetOrAdd(int shard, TKey key, out bool existed) =>
        ref CollectionsMarshal.GetValueRefOrAddDefault(_shards[shard], key, out existed);

    /// <summary>Records that <paramref name="entry"/> (of <paramref name="key"/>) was written in <paramref name="batchId"/>: it goes into the batch's delta once.</summary>
    public void Written(int shard, TKey key, ref StateEntry<TValue> entry, bool existed, long batchId)
    {
        if (!existed || entry.LastSeen != batchId) _touched[shard].Add(key);
        entry.LastSeen = batchId;
    }

    /// <summary>Removes <paramref name="key"/>; when it <paramref name="existed"/> before this batch's call, the removal goes into the delta.</summary>
    public void Remove(int shard, TKey key, bool existed)
    {
        _shards[shard].Remove(key);
        if (existed) _removed[shard].Add(key);
    }

    /// <summary>Removes every key not written for <paramref name="idleBatches"/> batches up to <paramref name="batchId"/>; adds them to <paramref name="expired"/>.</summary>
    public void Expire(long batchId, long idleBatches, List<(TKey Key, TValue Value)> expired)
    {
        int first = expired.Count;
        foreach (var shard in _shards)
        {
            foreach (var (key, entry) in shard)
            {
                if (batchId - entry.LastSeen >= idleBatches) expired.Add((key, entry.Value));
            }
        }

        for (int i = first; i < expired.Count; i++) Remove(ShardOf(expired[i].Key), expired[i].Key, existed: true);
    }

    public void Clear()
    {
        foreach (var shard in _shards) shard.Clear();
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(checked((int)Count));
        foreach (var shard in _shards)
        {
            foreach (var (key, entry) in shard) WriteEntry(writer, key, entry);
        }
    }

    private void WriteEntry(MessagePackWriter writer, TKey key, in StateEntry<TValue> entry)
    {
        writer.WriteArrayHeader(3);
        _keyFormatter.Serialize(writer, key);
        _valueFormatter.Serialize(writer, entry.Value);
        writer.Write(entry.LastSeen);
    }

    /// <summary>Replaces all state with a snapshot's entries; <paramref name="migrate"/> decodes values of an older version.</summary>
    public void RestoreSnapshot(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        Clear();
        int count = reader.ReadArrayHeader();
        foreach (var shard in _shards) shard.EnsureCapacity(count / _shards.Length + 1);
        for (int i = 0; i < count; i++)
        {
            var (key, entry) = ReadEntry(ref reader, migrate);
            if (key is null || !_shards[ShardOf(key)].TryAdd(key, entry))
                throw new MessagePackException($"The snapshot of operator '{_operatorId}' holds a null or repeated key.");
        }
    }

    private (TKey Key, StateEntry<TValue> Entry) ReadEntry(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A state entry of operator '{_operatorId}' is not a [key, value, lastSeen] triple.");
        TKey key = _keyFormatter.Deserialize(ref reader);
        var value = migrate is null ? _valueFormatter.Deserialize(ref reader) : migrate(ref reader);
        return (key, new StateEntry<TValue> { Value = value, LastSeen = reader.ReadInt64() });
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

        Parallel.For(0, _shards.Length, shard =>
        {
            var w = _shardWriters[shard];
            w.Clear();
            var states = _shards[shard];
            // A key removed and then added again in the batch is listed twice: write it once.
            var written = _removed[shard].Count == 0 ? null : new HashSet<TKey>();
            int entries = 0;
            foreach (var key in _touched[shard])
            {
                if (!states.TryGetValue(key, out var entry) || entry.LastSeen != batchId || (written is not null && !written.Add(key))) continue;
                WriteEntry(w, key, entry);
                entries++;
            }

            _shardEntries[shard] = entries;
        });
        writer.WriteArrayHeader(_shardEntries.Sum());
        foreach (var w in _shardWriters) writer.WriteRaw(w.WrittenSpan);
    }

    /// <summary>Applies a delta written by <see cref="WriteDelta"/>; <paramref name="migrate"/> decodes values of an older version.</summary>
    public void ApplyDelta(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"The delta of operator '{_operatorId}' is not a [removed, touched] pair.");
        int removed = reader.ReadArrayHeader();
        for (int i = 0; i < removed; i++)
        {
            TKey key = _keyFormatter.Deserialize(ref reader);
            if (key is not null) _shards[ShardOf(key)].Remove(key);
        }

        int touched = reader.ReadArrayHeader();
        for (int i = 0; i < touched; i++)
        {
            var (key, entry) = ReadEntry(ref reader, migrate);
            if (key is null) throw new MessagePackException($"The delta of operator '{_operatorId}' holds a null key.");
            _shards[ShardOf(key)][key] = entry;
        }
    }
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
