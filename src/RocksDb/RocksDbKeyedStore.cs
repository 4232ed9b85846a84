using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.Checkpointing;
using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// One keyed operator's state in a RocksDB database (see <see cref="RocksDbStateBackend"/>).
/// </summary>
/// <remarks>
/// <para>
/// Layout in the database: the default column family maps a key's MessagePack bytes to the batch that last wrote it
/// and its value (two MessagePack values, one after the other). An operator that expires idle keys also has the
/// column family <c>idle</c>, with one empty entry per key under <c>[last batch, 8 bytes big-endian][key bytes]</c>,
/// so that expiry reads only the keys that are due, in order, instead of every key.
/// </para>
/// <para>
/// A batch reads each key it meets once (then from its cache), and writes its changes as one write batch at its end,
/// without RocksDB's own log: the commit file's delta is the durable copy, and the database is rebuilt from the
/// checkpoint at every start.
/// </para>
/// </remarks>
internal sealed class RocksDbKeyedStore<TKey, TValue> : IExternalKeyedStore<TKey, TValue> where TKey : notnull
{
    private const string IdleFamily = "idle";

    private readonly KeyedStoreSpec<TKey, TValue> _spec;
    private readonly RocksDbOperatorDatabase _database;
    private readonly MessagePackWriter _scratch = new(256);
    private long _count;

    // The keys the current batch met, with what it did to them.
    private readonly Dictionary<TKey, Entry> _batch = new();

    public RocksDbKeyedStore(RocksDbStateBackend backend, KeyedStoreSpec<TKey, TValue> spec)
    {
        _spec = spec;
        _database = spec.TracksIdleKeys
            ? new RocksDbOperatorDatabase(backend, spec.PipelineId, spec.OperatorId, IdleFamily)
            : new RocksDbOperatorDatabase(backend, spec.PipelineId, spec.OperatorId);
    }

    private sealed class Entry
    {
        public required byte[] KeyBytes;
        public TValue Value = default!;
        public long LastSeen;
        public bool Live;
        public bool ExistedBefore;
        public long StoredLastSeen;
        public bool Dirty;
    }

    public long Count => _count;

    public long TouchedCount => _batch.Values.Count(e => e.Dirty);

    private RocksDbSharp.RocksDb Db => _database.Db;

    // The idle index, when the operator expires idle keys.
    private ColumnFamilyHandle? Idle => _spec.TracksIdleKeys ? _database.Family(IdleFamily) : null;

    public void BeginBatch() => _batch.Clear();

    public bool TryGet(TKey key, out TValue value)
    {
        var entry = Lookup(key);
        value = entry.Value;
        return entry.Live;
    }

    public void Put(TKey key, TValue value, long batchId)
    {
        var entry = Lookup(key);
        entry.Value = value;
        entry.LastSeen = batchId;
        entry.Live = true;
        entry.Dirty = true;
    }

    public void Remove(TKey key)
    {
        var entry = Lookup(key);
        entry.Value = default!;
        entry.Live = false;
        entry.Dirty = true;
    }

    private Entry Lookup(TKey key)
    {
        if (_batch.TryGetValue(key, out var entry)) return entry;
        var keyBytes = KeyBytes(key);
        entry = new Entry { KeyBytes = keyBytes };
        var stored = Db.Get(keyBytes);
        if (stored is not null)
        {
            (entry.StoredLastSeen, entry.Value) = DecodeValue(stored, null);
            entry.LastSeen = entry.StoredLastSeen;
            entry.Live = entry.ExistedBefore = true;
        }

        _batch.Add(key, entry);
        return entry;
    }

    public void EndBatch()
    {
        using var batch = new WriteBatch();
        foreach (var entry in _batch.Values)
        {
            if (!entry.Dirty) continue;
            if (entry.Live)
            {
                batch.Put(entry.KeyBytes, EncodeValue(entry.LastSeen, entry.Value));
                if (Idle is not null)
                {
                    if (entry.ExistedBefore) batch.Delete(IdleKey(entry.StoredLastSeen, entry.KeyBytes), Idle);
                    batch.Put(IdleKey(entry.LastSeen, entry.KeyBytes), Array.Empty<byte>(), Idle);
                }

                if (!entry.ExistedBefore) _count++;
            }
            else if (entry.ExistedBefore)
            {
                batch.Delete(entry.KeyBytes);
                if (Idle is not null) batch.Delete(IdleKey(entry.StoredLastSeen, entry.KeyBytes), Idle);
                _count--;
            }
        }

        if (batch.Count() > 0) Db.Write(batch, _database.WriteOptions);
    }

    public void Expire(long batchId, long idleBatches, List<(TKey Key, TValue Value)> expired)
    {
        var db = Db;
        var idle = Idle ?? throw new InvalidOperationException($"Operator '{_spec.OperatorId}' expires idle keys but its store was opened without the idle index.");
        long dueThrough = batchId - idleBatches;
        if (dueThrough < 0) return;
        var upper = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(upper, dueThrough + 1);
        var options = new ReadOptions().SetIterateUpperBound(upper);
        using var it = db.NewIterator(idle, options);
        for (it.SeekToFirst(); it.Valid(); it.Next())
        {
            var idleKey = it.GetKeySpan();
            var keyBytes = idleKey[8..].ToArray();
            var reader = new MessagePackReader(keyBytes);
            TKey key = _spec.KeyFormatter.Deserialize(ref reader);
            if (_batch.TryGetValue(key, out var entry))
            {
                // Met in this batch: written now (not idle), or already removed.
                if (!entry.Live || entry.LastSeen > dueThrough) continue;
            }
            else
            {
                entry = Lookup(key);
                if (!entry.Live) continue;
            }

            expired.Add((key, entry.Value));
            Remove(key);
        }
    }

    public IEnumerable<(TKey Key, TValue Value, long LastSeenBatch)> Entries()
    {
        using var it = Db.NewIterator();
        for (it.SeekToFirst(); it.Valid(); it.Next())
        {
            var reader = new MessagePackReader(it.GetKeySpan());
            TKey key = _spec.KeyFormatter.Deserialize(ref reader);
            var (lastSeen, value) = DecodeValue(it.GetValueSpan(), null);
            yield return (key, value, lastSeen);
        }
    }

    public void WriteDelta(MessagePackWriter writer)
    {
        // The in-memory store's layout: [[removed keys], [[key, value, lastSeen], ...]].
        writer.WriteArrayHeader(2);
        writer.WriteArrayHeader(_batch.Values.Count(e => e.Dirty && !e.Live && e.ExistedBefore));
        foreach (var entry in _batch.Values)
        {
            if (entry.Dirty && !entry.Live && entry.ExistedBefore) writer.WriteRaw(entry.KeyBytes);
        }

        writer.WriteArrayHeader(_batch.Values.Count(e => e.Dirty && e.Live));
        foreach (var entry in _batch.Values)
        {
            if (!entry.Dirty || !entry.Live) continue;
            writer.WriteArrayHeader(3);
            writer.WriteRaw(entry.KeyBytes);
            _spec.ValueFormatter.Serialize(writer, entry.Value);
            writer.Write(entry.LastSeen);
        }
    }

    public void ApplyDelta(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        _batch.Clear();
        var db = Db;
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"The delta of operator '{_spec.OperatorId}' is not a [removed, touched] pair.");
        using (var removals = new WriteBatch())
        {
            int removed = reader.ReadArrayHeader();
            for (int i = 0; i < removed; i++)
            {
                var keyBytes = reader.ReadRaw().ToArray();
                var stored = db.Get(keyBytes);
                if (stored is null) continue;
                removals.Delete(keyBytes);
                if (Idle is not null) removals.Delete(IdleKey(DecodeLastSeen(stored), keyBytes), Idle);
                _count--;
            }

            if (removals.Count() > 0) db.Write(removals, _database.WriteOptions);
        }

        using var puts = new WriteBatch();
        int touched = reader.ReadArrayHeader();
        for (int i = 0; i < touched; i++)
        {
            if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A state entry of operator '{_spec.OperatorId}' is not a [key, value, lastSeen] triple.");
            var keyBytes = reader.ReadRaw().ToArray();
            TValue value = migrate is null ? _spec.ValueFormatter.Deserialize(ref reader) : migrate(ref reader);
            long lastSeen = reader.ReadInt64();
            var stored = db.Get(keyBytes);
            puts.Put(keyBytes, EncodeValue(lastSeen, value));
            if (Idle is not null)
            {
                if (stored is not null) puts.Delete(IdleKey(DecodeLastSeen(stored), keyBytes), Idle);
                puts.Put(IdleKey(lastSeen, keyBytes), Array.Empty<byte>(), Idle);
            }

            if (stored is null) _count++;
        }

        if (puts.Count() > 0) db.Write(puts, _database.WriteOptions);
    }

    public void Clear()
    {
        _batch.Clear();
        _database.Reset();
        _count = 0;
    }

    // ---- snapshots -----------------------------------------------------------------------------

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId) => _database.Snapshot(writer, batchId, _count);

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, StateDecoder<TValue>? migrate, SharedStateFiles files)
    {
        _batch.Clear();
        _count = 0;
        if (format != SharedStateFileSet.Format)
        {
            // The in-memory backend's entries: loaded into a new database (switching backends).
            _database.Reset();
            var reader = new MessagePackReader(part.Span);
            LoadEntries(ref reader, migrate);
            return;
        }

        _count = _database.Restore(part, files);
        if (migrate is not null) MigrateAll(migrate);
    }

    /// <summary>Rewrites every value from the stored version to the current one (an upgrade's restore, once).</summary>
    private void MigrateAll(StateDecoder<TValue> migrate)
    {
        var db = Db;
        var batch = new WriteBatch();
        try
        {
            using var it = db.NewIterator();
            for (it.SeekToFirst(); it.Valid(); it.Next())
            {
                var (lastSeen, value) = DecodeValue(it.GetValueSpan(), migrate);
                batch.Put(it.Key(), EncodeValue(lastSeen, value));
                if (batch.Count() >= 10_000)
                {
                    db.Write(batch, _database.WriteOptions);
                    batch.Dispose();
                    batch = new WriteBatch();
                }
            }

            if (batch.Count() > 0) db.Write(batch, _database.WriteOptions);
        }
        finally
        {
            batch.Dispose();
        }
    }

    private void LoadEntries(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        var db = Db;
        int count = reader.ReadArrayHeader();
        var batch = new WriteBatch();
        try
        {
            for (int i = 0; i < count; i++)
            {
                if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A state entry of operator '{_spec.OperatorId}' is not a [key, value, lastSeen] triple.");
                var keyBytes = reader.ReadRaw().ToArray();
                TValue value = migrate is null ? _spec.ValueFormatter.Deserialize(ref reader) : migrate(ref reader);
                long lastSeen = reader.ReadInt64();
                batch.Put(keyBytes, EncodeValue(lastSeen, value));
                if (Idle is not null) batch.Put(IdleKey(lastSeen, keyBytes), Array.Empty<byte>(), Idle);
                if (batch.Count() >= 10_000)
                {
                    db.Write(batch, _database.WriteOptions);
                    batch.Dispose();
                    batch = new WriteBatch();
                }
            }

            if (batch.Count() > 0) db.Write(batch, _database.WriteOptions);
            _count = count;
        }
        finally
        {
            batch.Dispose();
        }
    }

    public void Dispose()
    {
        _batch.Clear();
        _database.Dispose();
    }

    // ---- encodings ----------------------------------------------------------------------------

    private byte[] KeyBytes(TKey key)
    {
        _scratch.Clear();
        _spec.KeyFormatter.Serialize(_scratch, key);
        return _scratch.ToArray();
    }

    private byte[] EncodeValue(long lastSeen, TValue value)
    {
        _scratch.Clear();
        _scratch.Write(lastSeen);
        _spec.ValueFormatter.Serialize(_scratch, value);
        return _scratch.ToArray();
    }

    private (long LastSeen, TValue Value) DecodeValue(ReadOnlySpan<byte> stored, StateDecoder<TValue>? migrate)
    {
        var reader = new MessagePackReader(stored);
        long lastSeen = reader.ReadInt64();
        return (lastSeen, migrate is null ? _spec.ValueFormatter.Deserialize(ref reader) : migrate(ref reader));
    }

    private static long DecodeLastSeen(ReadOnlySpan<byte> stored)
    {
        var reader = new MessagePackReader(stored);
        return reader.ReadInt64();
    }

    private static byte[] IdleKey(long lastSeen, byte[] keyBytes)
    {
        var key = new byte[8 + keyBytes.Length];
        BinaryPrimitives.WriteInt64BigEndian(key, lastSeen);
        keyBytes.CopyTo(key, 8);
        return key;
    }
}
