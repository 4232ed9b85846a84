using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// A session window's open sessions in a RocksDB database (see <see cref="RocksDbStateBackend"/>): a batch reads only the
/// keys it meets and the keys that come due.
/// </summary>
/// <remarks>
/// <para>
/// Layout in the database (see <see cref="RocksDbSessionLayout"/>): the default column family maps a key's MessagePack
/// bytes to its sessions, <c>[[start, end, value], ...]</c> sorted by start (the heap layout's entry, without the key).
/// The column family <c>due</c> holds one empty entry per queued key under <c>[end, 8 bytes big-endian with the sign bit
/// flipped][key bytes]</c>, the order keys come due in; as on the heap, an entry may be stale (the key's sessions
/// changed or fired since), and a key taken is checked against its sessions.
/// </para>
/// <para>
/// A batch loads each key it meets once (into its cache) and writes the keys it changed at its end. Deltas are the heap
/// store's (format 2); snapshots list the database's files (format <see cref="SharedStateFileSet.Format"/>).
/// </para>
/// </remarks>
internal sealed class RocksDbSessionStore<TKey, T> : ISessionStore<TKey, T> where TKey : notnull
{
    internal const string DueFamily = "due";
    private const long ChangedKeys = 0;

    private readonly SessionStoreSpec<TKey, T> _spec;
    private readonly RocksDbOperatorDatabase _database;
    private readonly MessagePackWriter _scratch = new(256);
    private readonly ReadOptions _range = new();
    private long _keyCount;

    // The keys the current batch met; the keys it changed; the due entries it added, not yet written.
    private readonly Dictionary<TKey, Cached> _batch = new();
    private readonly HashSet<TKey> _changed = new();
    private readonly List<byte[]> _newDue = new();

    // The keys taken due in this batch and not yet returned by TryTakeDue.
    private readonly Queue<(TKey Key, byte[] KeyBytes)> _due = new();
    private bool _dueRead;

    // Every due entry below this was taken (and deleted): reading the index starts here, not at the tombstones below it.
    private long _dueFloor = long.MinValue;

    public RocksDbSessionStore(RocksDbStateBackend backend, SessionStoreSpec<TKey, T> spec)
    {
        _spec = spec;
        _database = new RocksDbOperatorDatabase(backend, spec.PipelineId, spec.OperatorId, DueFamily);
    }

    private sealed class Cached
    {
        public required byte[] KeyBytes;
        public required List<Session<T>> Sessions;
        public bool Stored;
    }

    public long KeyCount => _keyCount;

    public long ChangedCount => _changed.Count;

    public int SnapshotFormat => SharedStateFileSet.Format;

    public void BeginBatch()
    {
        _batch.Clear();
        _changed.Clear();
        _newDue.Clear();
        _due.Clear();
        _dueRead = false;
    }

    public List<Session<T>> SessionsOf(TKey key) => Lookup(key, null).Sessions;

    private Cached Lookup(TKey key, byte[]? keyBytes)
    {
        if (_batch.TryGetValue(key, out var cached)) return cached;
        keyBytes ??= KeyBytes(key);
        var stored = _database.Db.Get(keyBytes);
        cached = new Cached { KeyBytes = keyBytes, Sessions = stored is null ? new List<Session<T>>(1) : ReadSessions(stored), Stored = stored is not null };
        _batch.Add(key, cached);
        return cached;
    }

    public void Changed(TKey key) => _changed.Add(key);

    public void DueAt(TKey key, long end)
    {
        var keyBytes = Lookup(key, null).KeyBytes;
        if (end < _dueFloor) _dueFloor = end;
        _newDue.Add(DueKey(end, keyBytes));
    }

    public bool TryTakeDue(long watermark, out TKey key, out List<Session<T>>? sessions)
    {
        if (!_dueRead) ReadDue(watermark);
        while (_due.TryDequeue(out var next))
        {
            var cached = Lookup(next.Key, next.KeyBytes);
            if (cached.Sessions.Count == 0) continue; // a stale entry: the key's sessions are gone
            key = next.Key;
            sessions = cached.Sessions;
            return true;
        }

        key = default!;
        sessions = null;
        return false;
    }

    /// <summary>Takes every due entry at or before the watermark out of the index, in end order, once per batch.</summary>
    private void ReadDue(long watermark)
    {
        _dueRead = true;
        var db = _database.Db;
        var due = _database.Family(DueFamily);
        WriteNewDue();
        var from = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(from, Flip(_dueFloor));
        byte[]? upper = null;
        if (watermark != long.MaxValue)
        {
            upper = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(upper, Flip(watermark + 1)); // ends at or before the watermark
        }

        var seen = new HashSet<TKey>();
        byte[]? last = null;
        using (var it = upper is null ? db.NewIterator(due) : db.NewIterator(due, _range.SetIterateUpperBound(upper)))
        {
            for (it.Seek(from); it.Valid(); it.Next())
            {
                var dueKey = it.GetKeySpan();
                var keyBytes = dueKey[8..].ToArray();
                var reader = new MessagePackReader(keyBytes);
                TKey key = _spec.KeyFormatter.Deserialize(ref reader);
                if (seen.Add(key)) _due.Enqueue((key, keyBytes));
                last = dueKey.ToArray();
            }
        }

        if (last is null) return;
        // The entries read are exactly those in [from, last]: one range deletion removes them.
        var end = new byte[last.Length + 1];
        last.CopyTo(end, 0);
        using var batch = new WriteBatch();
        batch.DeleteRange(from, (ulong)from.Length, end, (ulong)end.Length, due);
        _database.Write(batch);
        if (watermark != long.MaxValue && watermark + 1 > _dueFloor) _dueFloor = watermark + 1;
    }

    private void WriteNewDue()
    {
        if (_newDue.Count == 0) return;
        var due = _database.Family(DueFamily);
        using var batch = new WriteBatch();
        foreach (var dueKey in _newDue) batch.Put(dueKey, Array.Empty<byte>(), due);
        _database.Write(batch);
        _newDue.Clear();
    }

    public void Settle(TKey key, List<Session<T>> sessions, List<(TKey, long)> requeue)
    {
        if (sessions.Count > 0) requeue.Add((key, sessions.Min(s => s.End)));
    }

    public void Requeue(List<(TKey Key, long End)> requeue)
    {
        foreach (var (key, end) in requeue) DueAt(key, end);
    }

    public void EndBatch()
    {
        WriteNewDue();
        if (_changed.Count == 0) return;
        using var batch = new WriteBatch();
        foreach (var key in _changed)
        {
            var cached = _batch[key];
            if (cached.Sessions.Count > 0)
            {
                batch.Put(cached.KeyBytes, WriteSessions(cached.Sessions));
                if (!cached.Stored) _keyCount++;
                cached.Stored = true;
            }
            else if (cached.Stored)
            {
                batch.Delete(cached.KeyBytes);
                _keyCount--;
                cached.Stored = false;
            }
        }

        _database.Write(batch);
    }

    // ---- deltas -------------------------------------------------------------------------------

    public void WriteDelta(MessagePackWriter writer)
    {
        // The heap store's layout: {0: [[key, [[start, end, value], ...]], ...]}, no sessions when the key is gone.
        writer.WriteMapHeader(1);
        writer.Write(ChangedKeys);
        writer.WriteArrayHeader(_changed.Count);
        foreach (var key in _changed)
        {
            var cached = _batch[key];
            writer.WriteArrayHeader(2);
            writer.WriteRaw(cached.KeyBytes);
            WriteSessions(writer, cached.Sessions);
        }
    }

    public void ApplyDelta(ref MessagePackReader reader)
    {
        if (SessionStore<TKey, T>.IsWholeState(ref reader))
        {
            // Format 1: builds before incremental deltas wrote the whole state.
            Clear();
            LoadEntries(ref reader);
            return;
        }

        if (reader.ReadMapHeader() != 1 || reader.ReadInt64() != ChangedKeys) throw new MessagePackException($"The delta of session window '{_spec.OperatorId}' is not a {{0: changed keys}} map.");
        BeginBatch();
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            var (key, keyBytes, sessions) = ReadEntry(ref reader);
            var cached = Lookup(key, keyBytes);
            cached.Sessions = sessions;
            _changed.Add(key);
            // As on the heap after a delta, the key is due at its earliest end; an older entry of it is stale, and harmless.
            if (sessions.Count > 0) _newDue.Add(DueKey(sessions.Min(s => s.End), keyBytes));
        }

        _dueFloor = long.MinValue; // a recovery: the next batch reads the index from its start
        EndBatch();
        BeginBatch();
    }

    private (TKey Key, byte[] KeyBytes, List<Session<T>> Sessions) ReadEntry(ref MessagePackReader reader)
    {
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A session entry of operator '{_spec.OperatorId}' is not a [key, sessions] pair.");
        var keyBytes = reader.ReadRaw().ToArray();
        var keyReader = new MessagePackReader(keyBytes);
        TKey key = _spec.KeyFormatter.Deserialize(ref keyReader) ?? throw new MessagePackException($"The state of operator '{_spec.OperatorId}' holds a null key.");
        var sessions = ReadSessions(ref reader);
        return (key, keyBytes, sessions);
    }

    /// <summary>The heap store's snapshot entries (or a format 1 delta), into an empty store.</summary>
    private void LoadEntries(ref MessagePackReader reader)
    {
        BeginBatch();
        int count = reader.ReadArrayHeader();
        var seen = new HashSet<TKey>();
        for (int i = 0; i < count; i++)
        {
            var (key, keyBytes, sessions) = ReadEntry(ref reader);
            if (sessions.Count == 0 || !seen.Add(key)) throw new MessagePackException($"The state of operator '{_spec.OperatorId}' holds a null, empty or repeated key.");
            _batch[key] = new Cached { KeyBytes = keyBytes, Sessions = sessions };
            _changed.Add(key);
            _newDue.Add(DueKey(sessions.Min(s => s.End), keyBytes));
        }

        EndBatch();
        BeginBatch();
    }

    // ---- snapshots ----------------------------------------------------------------------------

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId) => _database.Snapshot(writer, batchId, _keyCount);

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files)
    {
        Clear();
        if (format != SharedStateFileSet.Format)
        {
            // The heap store's entries: loaded into a new database (switching backends).
            var reader = new MessagePackReader(part.Span);
            LoadEntries(ref reader);
            return;
        }

        _keyCount = _database.Restore(part, files ?? throw new InvalidOperationException($"No checkpoint store to read the state files of operator '{_spec.OperatorId}' from."));
    }

    public void Clear()
    {
        BeginBatch();
        _database.Reset();
        _keyCount = 0;
        _dueFloor = long.MinValue;
    }

    public void Dispose()
    {
        BeginBatch();
        _database.Dispose();
    }

    // ---- encodings ----------------------------------------------------------------------------

    private byte[] KeyBytes(TKey key)
    {
        _scratch.Clear();
        _spec.KeyFormatter.Serialize(_scratch, key);
        return _scratch.ToArray();
    }

    private byte[] WriteSessions(List<Session<T>> sessions)
    {
        _scratch.Clear();
        WriteSessions(_scratch, sessions);
        return _scratch.ToArray();
    }

    private void WriteSessions(MessagePackWriter writer, List<Session<T>> sessions)
    {
        writer.WriteArrayHeader(sessions.Count);
        foreach (var s in sessions)
        {
            writer.WriteArrayHeader(3);
            writer.Write(s.Start);
            writer.Write(s.End);
            _spec.ValueFormatter.Serialize(writer, s.Value);
        }
    }

    private List<Session<T>> ReadSessions(byte[] stored)
    {
        var reader = new MessagePackReader(stored);
        return ReadSessions(ref reader);
    }

    private List<Session<T>> ReadSessions(ref MessagePackReader reader)
    {
        int n = reader.ReadArrayHeader();
        var list = new List<Session<T>>(Math.Max(n, 1));
        for (int s = 0; s < n; s++)
        {
            if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A session of operator '{_spec.OperatorId}' is not a [start, end, value] triple.");
            list.Add(new Session<T> { Start = reader.ReadInt64(), End = reader.ReadInt64(), Value = _spec.ValueFormatter.Deserialize(ref reader) });
        }

        return list;
    }

    private static byte[] DueKey(long end, byte[] keyBytes)
    {
        var key = new byte[8 + keyBytes.Length];
        BinaryPrimitives.WriteUInt64BigEndian(key, Flip(end));
        keyBytes.CopyTo(key, 8);
        return key;
    }

    // Signed times in an order bytes compare in: the sign bit flipped, so that negative times sort first.
    private static ulong Flip(long time) => (ulong)time ^ 0x8000_0000_0000_0000UL;
}
