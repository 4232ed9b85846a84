using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using PipelineDsl.Execution;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// An event-time window's panes in a RocksDB database (see <see cref="RocksDbStateBackend"/>): a batch reads only the
/// key-panes its records meet and the panes of the windows that fire; a removed pane is one range deletion.
/// </summary>
/// <remarks>
/// <para>
/// Layout in the database (see <see cref="RocksDbPaneLayout"/>): the default column family maps
/// <c>[table][start, 8 bytes big-endian with the sign bit flipped][key bytes]</c> to the value's MessagePack bytes, where
/// table 0 holds panes and table 1 the legacy whole windows of a build before panes; so one pane's entries are one
/// bounded range, in the order of their key bytes. The column family <c>windows</c> maps <c>[table][start]</c> to the
/// number of entries the pane holds (8 bytes big-endian), which a restore reads to know the panes without scanning them.
/// </para>
/// <para>
/// The panes' starts and entry counts are also kept in memory (a window holds few panes): a fold into a pane with no
/// stored entries (most folds: a pane is new while records arrive for it) reads nothing. Deltas are the heap store's
/// (<see cref="PaneChanges"/>); snapshots list the database's files (format <see cref="SharedStateFileSet.Format"/>).
/// </para>
/// </remarks>
internal sealed class RocksDbPaneStore<TKey, T> : IPaneStore<TKey, T>, IPaneTarget<TKey, T> where TKey : notnull
{
    internal const string WindowsFamily = "windows";
    internal const byte PaneTable = 0, LegacyTable = 1;
    private const int LoadBatchLimit = 50_000;

    private readonly PaneStoreSpec<TKey, T> _spec;
    private readonly RocksDbOperatorDatabase _database;
    private readonly MessagePackWriter _scratch = new(256);
    private readonly ReadOptions _range = new();
    private readonly SortedDictionary<long, Window> _panes = new();
    private readonly SortedDictionary<long, Window> _legacyWindows = new();
    private long _keyCount;

    // What the current batch changed: the panes it folded into (with their touched keys), removed, and fired.
    private readonly List<(long Start, Window Window)> _batchPanes = new();
    private readonly List<long> _removed = new();
    private readonly List<long> _firedLegacy = new();
    private long _updatedCount;
    private readonly Stack<Dictionary<TKey, Slot>> _spareBatches = new();

    // The pane the last fold went to.
    private long _cachedStart;
    private Window? _cached;

    // A snapshot or delta being read: its writes, the window it is filling and the keys read into it.
    private WriteBatch? _loading;
    private int _loadingCount;
    private readonly List<(byte Table, long Start, Window Window)> _loadedWindows = new();
    private Window? _reading;
    private byte _readingTable;
    private long _readingStart;
    private bool _readingSnapshot;
    private readonly HashSet<TKey> _readingKeys = new();

    public RocksDbPaneStore(RocksDbStateBackend backend, PaneStoreSpec<TKey, T> spec)
    {
        _spec = spec;
        _database = new RocksDbOperatorDatabase(backend, spec.PipelineId, spec.OperatorId, WindowsFamily);
    }

    /// <summary>A pane or legacy window held: its entries in the database, and the current batch's touched keys.</summary>
    private sealed class Window
    {
        public long Stored;
        public long Updated;
        public bool Removed;
        public Dictionary<TKey, Slot>? Batch;
    }

    /// <summary>A key the current batch folded into a pane: its value, its bytes once known, and whether the database has it.</summary>
    private struct Slot
    {
        public T Value;
        public byte[]? KeyBytes;
        public bool HasValue;
        public bool InDatabase;
        public bool Updated;
    }

    public long KeyCount => _keyCount;

    public long UpdatedCount => _updatedCount;

    public int SnapshotFormat => SharedStateFileSet.Format;

    public void BeginBatch()
    {
        foreach (var (_, window) in _batchPanes)
        {
            if (window.Batch is { } batch)
            {
                batch.Clear();
                _spareBatches.Push(batch);
            }

            window.Batch = null;
            window.Updated = 0;
        }

        _batchPanes.Clear();
        _removed.Clear();
        _firedLegacy.Clear();
        _updatedCount = 0;
        _cached = null;
    }

    public void Fold(long paneStart, TKey key, T record, Func<T, T, T> combine)
    {
        if (_cached is null || paneStart != _cachedStart)
        {
            if (!_panes.TryGetValue(paneStart, out _cached)) _panes[paneStart] = _cached = new Window();
            _cachedStart = paneStart;
        }

        var window = _cached;
        if (window.Batch is null)
        {
            window.Batch = _spareBatches.TryPop(out var spare) ? spare : new Dictionary<TKey, Slot>();
            _batchPanes.Add((paneStart, window));
        }

        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(window.Batch, key, out bool exists);
        if (!exists && window.Stored > 0) Load(ref slot, paneStart, key);
        if (slot.HasValue)
        {
            T combined = combine(slot.Value, record);
            if (Accumulator.Unchanged(slot.Value, combined)) return; // a max or a first kept its value: nothing to write
            slot.Value = combined;
        }
        else
        {
            slot.Value = record;
            slot.HasValue = true;
        }

        if (slot.Updated) return;
        slot.Updated = true;
        window.Updated++;
        _updatedCount++;
    }

    private void Load(ref Slot slot, long start, TKey key)
    {
        slot.KeyBytes = KeyBytes(key);
        var stored = _database.Db.Get(EntryKey(PaneTable, start, slot.KeyBytes));
        if (stored is null) return;
        var reader = new MessagePackReader(stored);
        slot.Value = _spec.ValueFormatter.Deserialize(ref reader);
        slot.HasValue = true;
        slot.InDatabase = true;
    }

    /// <summary>Writes the batch's folds to the database, so that firing windows read them there.</summary>
    public void EndFolds()
    {
        if (_updatedCount == 0) return;
        var windows = _database.Family(WindowsFamily);
        using var batch = new WriteBatch();
        foreach (var (start, window) in _batchPanes)
        {
            if (window.Updated == 0) continue;
            long before = window.Stored;
            foreach (var key in window.Batch!.Keys)
            {
                ref var slot = ref CollectionsMarshal.GetValueRefOrNullRef(window.Batch, key);
                if (!slot.Updated) continue;
                slot.KeyBytes ??= KeyBytes(key);
                batch.Put(EntryKey(PaneTable, start, slot.KeyBytes), ValueBytes(slot.Value));
                if (slot.InDatabase) continue;
                slot.InDatabase = true;
                window.Stored++;
            }

            _keyCount += window.Stored - before;
            if (window.Stored != before) batch.Put(WindowKey(PaneTable, start), CountBytes(window.Stored), windows);
        }

        _database.Write(batch);
    }

    public IEnumerable<long> PaneStarts => _panes.Keys;

    public bool TryGetFirstPane(out long start)
    {
        foreach (long first in _panes.Keys)
        {
            start = first;
            return true;
        }

        start = 0;
        return false;
    }

    public IEnumerable<KeyValuePair<TKey, T>> Pane(long start)
    {
        if (!_panes.TryGetValue(start, out var window) || window.Stored == 0) yield break;
        using var it = Range(PaneTable, start);
        for (; it.Valid(); it.Next())
        {
            var (key, value) = ReadEntry(it);
            yield return new KeyValuePair<TKey, T>(key, value);
        }
    }

    public void RemovePane(long start)
    {
        if (!_panes.Remove(start, out var window)) return;
        _updatedCount -= window.Updated;
        window.Removed = true;
        if (start == _cachedStart) _cached = null;
        _removed.Add(start);
        DeleteWindow(PaneTable, start, window);
    }

    /// <summary>Deletes a pane's or legacy window's entries (one range deletion) and its count.</summary>
    private void DeleteWindow(byte table, long start, Window window)
    {
        _keyCount -= window.Stored;
        using var batch = new WriteBatch();
        DeleteWindow(batch, table, start);
        _database.Write(batch);
    }

    private void DeleteWindow(WriteBatch batch, byte table, long start)
    {
        byte[] from = WindowKey(table, start), to = WindowEnd(table, start);
        batch.DeleteRange(from, (ulong)from.Length, to, (ulong)to.Length);
        batch.Delete(from, _database.Family(WindowsFamily));
    }

    public bool HasLegacyWindows => _legacyWindows.Count > 0;

    public IEnumerable<long> LegacyWindowStarts => _legacyWindows.Keys;

    public bool TakeLegacyWindow(long start, Dictionary<TKey, T> into)
    {
        if (!_legacyWindows.Remove(start, out var window)) return false;
        _firedLegacy.Add(start);
        if (window.Stored > 0)
        {
            using var it = Range(LegacyTable, start);
            for (; it.Valid(); it.Next())
            {
                var (key, value) = ReadEntry(it);
                into[key] = value;
            }
        }

        DeleteWindow(LegacyTable, start, window);
        return true;
    }

    public IEnumerable<(bool Legacy, long Start, TKey Key, T Value)> Entries()
    {
        using var it = _database.Db.NewIterator();
        for (it.SeekToFirst(); it.Valid(); it.Next())
        {
            var entryKey = it.GetKeySpan();
            var (key, value) = ReadEntry(it);
            yield return (entryKey[0] == LegacyTable, Unflip(BinaryPrimitives.ReadUInt64BigEndian(entryKey[1..9])), key, value);
        }
    }

    private Iterator Range(byte table, long start)
    {
        var it = _database.Db.NewIterator(null, _range.SetIterateUpperBound(WindowEnd(table, start)));
        it.Seek(WindowKey(table, start));
        return it;
    }

    private (TKey Key, T Value) ReadEntry(Iterator it)
    {
        var keyReader = new MessagePackReader(it.GetKeySpan()[9..]);
        TKey key = _spec.KeyFormatter.Deserialize(ref keyReader);
        var valueReader = new MessagePackReader(it.GetValueSpan());
        return (key, _spec.ValueFormatter.Deserialize(ref valueReader));
    }

    // ---- deltas -------------------------------------------------------------------------------

    public void WriteDelta(MessagePackWriter writer) => PaneChanges.WriteDelta(writer, _spec.Tumbling, WriteUpdates, _removed, _firedLegacy);

    private void WriteUpdates(MessagePackWriter writer)
    {
        int panes = 0;
        foreach (var (_, window) in _batchPanes)
        {
            if (!window.Removed && window.Updated > 0) panes++;
        }

        writer.WriteArrayHeader(panes);
        foreach (var (start, window) in _batchPanes)
        {
            if (window.Removed || window.Updated == 0) continue;
            writer.WriteArrayHeader(2);
            writer.Write(start);
            writer.WriteArrayHeader((int)window.Updated);
            foreach (var (_, slot) in window.Batch!)
            {
                if (!slot.Updated) continue;
                writer.WriteArrayHeader(2);
                writer.WriteRaw(slot.KeyBytes!);
                _spec.ValueFormatter.Serialize(writer, slot.Value);
            }
        }
    }

    public void ApplyDelta(ref MessagePackReader reader)
    {
        BeginBatch();
        _loading = new WriteBatch();
        try
        {
            PaneChanges.ReadDelta(ref reader, _spec, this);
            EndLoad();
        }
        finally
        {
            _loading?.Dispose();
            _loading = null;
        }
    }

    void IPaneTarget<TKey, T>.Reset()
    {
        _loading!.Clear();
        _loadingCount = 0;
        _loadedWindows.Clear();
        Clear();
    }

    void IPaneTarget<TKey, T>.Window(bool legacy, long start, bool snapshot)
    {
        var windows = legacy ? _legacyWindows : _panes;
        if (!windows.TryGetValue(start, out _reading))
        {
            windows[start] = _reading = new Window();
        }
        else if (snapshot)
        {
            throw new MessagePackException($"Operator '{_spec.OperatorId}' holds window {start} twice.");
        }

        _readingTable = legacy ? LegacyTable : PaneTable;
        _readingStart = start;
        _readingSnapshot = snapshot;
        _readingKeys.Clear();
        _loadedWindows.Add((_readingTable, start, _reading));
    }

    void IPaneTarget<TKey, T>.Entry(TKey key, ReadOnlySpan<byte> keyBytes, T value)
    {
        var entryKey = EntryKey(_readingTable, _readingStart, keyBytes);
        bool held = !_readingKeys.Add(key);
        if (held && _readingSnapshot) throw new MessagePackException($"Window {_readingStart} of operator '{_spec.OperatorId}' holds key {key} twice.");
        // A delta replaces a key's value: the key is new to the window unless this delta or the database holds it already.
        if (!held && !_readingSnapshot && _reading!.Stored > 0) held = _database.Db.Get(entryKey) is not null;
        _loading!.Put(entryKey, ValueBytes(value));
        if (!held)
        {
            _reading!.Stored++;
            _keyCount++;
        }

        if (++_loadingCount >= LoadBatchLimit) FlushLoad();
    }

    void IPaneTarget<TKey, T>.Remove(bool legacy, long start)
    {
        var windows = legacy ? _legacyWindows : _panes;
        if (!windows.Remove(start, out var window)) return;
        window.Removed = true;
        _keyCount -= window.Stored;
        if (start == _cachedStart) _cached = null;
        DeleteWindow(_loading!, legacy ? LegacyTable : PaneTable, start);
    }

    // Writes what has been read so far; the next reads see it in the database.
    private void FlushLoad()
    {
        _database.Write(_loading!);
        _loading!.Clear();
        _loadingCount = 0;
    }

    private void EndLoad()
    {
        var windows = _database.Family(WindowsFamily);
        foreach (var (table, start, window) in _loadedWindows)
        {
            if (window.Removed) continue;
            if (window.Stored > 0) _loading!.Put(WindowKey(table, start), CountBytes(window.Stored), windows);
            else _loading!.Delete(WindowKey(table, start), windows); // an empty window has no count: a restore does not hold it
        }

        _loadedWindows.Clear();
        FlushLoad();
    }

    // ---- snapshots ----------------------------------------------------------------------------

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId) => _database.Snapshot(writer, batchId, _keyCount);

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files)
    {
        if (format != SharedStateFileSet.Format)
        {
            // The heap store's entries: loaded into a new database (switching backends).
            BeginBatch();
            _loading = new WriteBatch();
            try
            {
                var reader = new MessagePackReader(part.Span);
                PaneChanges.ReadSnapshot(ref reader, _spec, this);
                EndLoad();
            }
            finally
            {
                _loading?.Dispose();
                _loading = null;
            }

            return;
        }

        Clear();
        _keyCount = _database.Restore(part, files ?? throw new InvalidOperationException($"No checkpoint store to read the state files of operator '{_spec.OperatorId}' from."));
        long counted = 0;
        using (var it = _database.Db.NewIterator(_database.Family(WindowsFamily)))
        {
            for (it.SeekToFirst(); it.Valid(); it.Next())
            {
                var windowKey = it.GetKeySpan();
                var count = it.GetValueSpan();
                if (windowKey.Length != 9 || windowKey[0] > LegacyTable || count.Length != 8)
                    throw new InvalidOperationException($"The RocksDB state of window '{_spec.OperatorId}' holds a pane count that is not [table][start] → count; the checkpoint is damaged or was not written by this operator.");
                var window = new Window { Stored = BinaryPrimitives.ReadInt64BigEndian(count) };
                (windowKey[0] == LegacyTable ? _legacyWindows : _panes)[Unflip(BinaryPrimitives.ReadUInt64BigEndian(windowKey[1..]))] = window;
                counted += window.Stored;
            }
        }

        if (counted != _keyCount)
            throw new InvalidOperationException($"The RocksDB state of window '{_spec.OperatorId}' counts {counted} entries in its panes, but its snapshot lists {_keyCount}; the checkpoint is damaged.");
    }

    public void Clear()
    {
        BeginBatch();
        _database.Reset();
        _panes.Clear();
        _legacyWindows.Clear();
        _keyCount = 0;
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

    private byte[] ValueBytes(T value)
    {
        _scratch.Clear();
        _spec.ValueFormatter.Serialize(_scratch, value);
        return _scratch.ToArray();
    }

    private static byte[] EntryKey(byte table, long start, ReadOnlySpan<byte> keyBytes)
    {
        var key = new byte[9 + keyBytes.Length];
        key[0] = table;
        BinaryPrimitives.WriteUInt64BigEndian(key.AsSpan(1), Flip(start));
        keyBytes.CopyTo(key.AsSpan(9));
        return key;
    }

    private static byte[] WindowKey(byte table, long start) => EntryKey(table, start, ReadOnlySpan<byte>.Empty);

    // The first key after every entry of the window: its start + 1 (a start is never long.MaxValue: it is a floor of a time).
    private static byte[] WindowEnd(byte table, long start) => EntryKey(table, start + 1, ReadOnlySpan<byte>.Empty);

    private static byte[] CountBytes(long count)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(bytes, count);
        return bytes;
    }

    // Signed times in an order bytes compare in: the sign bit flipped, so that negative times sort first.
    private static ulong Flip(long time) => (ulong)time ^ 0x8000_0000_0000_0000UL;

    private static long Unflip(ulong stored) => (long)(stored ^ 0x8000_0000_0000_0000UL);
}
