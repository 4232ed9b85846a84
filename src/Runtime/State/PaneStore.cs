using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.Execution;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>
/// An event-time window's state on the heap: for each pane start, the value per key; the legacy whole windows of an
/// older build; the keys each batch updated per pane and the panes it removed (so a batch's delta costs what the batch
/// changed). Keyed state with a namespace, as Flink keeps window state: the namespace is the pane.
/// </summary>
/// <remarks>
/// The layout of snapshots and deltas is <see cref="PaneChanges"/>'s. Emptied panes and key sets are kept for reuse: a
/// busy pane's table is large enough for the large object heap, and allocating one per pane per batch there turns
/// collections into full ones.
/// </remarks>
internal sealed class PaneStore<TKey, T> : IPaneStore<TKey, T>, IPaneTarget<TKey, T> where TKey : notnull
{
    /// <summary>Format 2: panes (see <see cref="PaneChanges"/>).</summary>
    public const int Format = 2;

    private readonly PaneStoreSpec<TKey, T> _spec;
    private readonly SortedDictionary<long, Dictionary<TKey, T>> _panes = new();
    private readonly SortedDictionary<long, Dictionary<TKey, T>> _legacyWindows = new();
    private readonly Dictionary<long, HashSet<TKey>> _updated = new();
    private readonly List<long> _removed = new();
    private readonly List<long> _firedLegacy = new();
    private readonly Stack<Dictionary<TKey, T>> _sparePanes = new();
    private readonly Stack<HashSet<TKey>> _spareKeySets = new();

    // The pane the last fold went to: records of a batch mostly arrive in time order, so most folds hit it.
    private long _cachedStart;
    private Dictionary<TKey, T>? _cachedEntries;
    private HashSet<TKey>? _cachedUpdated;

    // The window a snapshot or delta being read is filling.
    private Dictionary<TKey, T>? _reading;
    private long _readingStart;
    private bool _readingSnapshot;

    public PaneStore(PaneStoreSpec<TKey, T> spec) => _spec = spec;

    public long KeyCount
    {
        get
        {
            long count = 0;
            foreach (var entries in _panes.Values) count += entries.Count;
            foreach (var entries in _legacyWindows.Values) count += entries.Count;
            return count;
        }
    }

    public long UpdatedCount
    {
        get
        {
            long count = 0;
            foreach (var keys in _updated.Values) count += keys.Count;
            return count;
        }
    }

    public int SnapshotFormat => Format;

    public void BeginBatch()
    {
        foreach (var keys in _updated.Values) Recycle(keys);
        _updated.Clear();
        _removed.Clear();
        _firedLegacy.Clear();
        _cachedEntries = null;
    }

    public void Fold(long paneStart, TKey key, T record, Func<T, T, T> combine)
    {
        if (_cachedEntries is null || paneStart != _cachedStart)
        {
            if (!_panes.TryGetValue(paneStart, out _cachedEntries)) _panes[paneStart] = _cachedEntries = _sparePanes.TryPop(out var spare) ? spare : new Dictionary<TKey, T>();
            if (!_updated.TryGetValue(paneStart, out _cachedUpdated)) _updated[paneStart] = _cachedUpdated = _spareKeySets.TryPop(out var spareKeys) ? spareKeys : new HashSet<TKey>();
            _cachedStart = paneStart;
        }

        ref T? slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_cachedEntries, key, out bool exists);
        if (exists)
        {
            T combined = combine(slot!, record);
            if (Accumulator.Unchanged(slot!, combined)) return; // a max or a first kept its value: nothing for the delta
            slot = combined;
        }
        else
        {
            slot = record;
        }

        _cachedUpdated!.Add(key);
    }

    /// <summary>Nothing to do: the folds are in the panes already.</summary>
    public void EndFolds()
    {
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

    public IEnumerable<KeyValuePair<TKey, T>> Pane(long start) =>
        _panes.TryGetValue(start, out var entries) ? entries : Enumerable.Empty<KeyValuePair<TKey, T>>();

    public void RemovePane(long start)
    {
        if (!_panes.Remove(start, out var entries)) return;
        if (_updated.Remove(start, out var keys)) Recycle(keys);
        if (start == _cachedStart) _cachedEntries = null;
        _removed.Add(start);
        entries.Clear();
        _sparePanes.Push(entries);
    }

    public bool HasLegacyWindows => _legacyWindows.Count > 0;

    public IEnumerable<long> LegacyWindowStarts => _legacyWindows.Keys;

    public bool TakeLegacyWindow(long start, Dictionary<TKey, T> into)
    {
        if (!_legacyWindows.Remove(start, out var window)) return false;
        _firedLegacy.Add(start);
        foreach (var (key, value) in window) into[key] = value;
        return true;
    }

    public void Clear()
    {
        _panes.Clear();
        _legacyWindows.Clear();
        _updated.Clear();
        _removed.Clear();
        _firedLegacy.Clear();
        _cachedEntries = null;
    }

    public void Dispose()
    {
    }

    private void Recycle(HashSet<TKey> keys)
    {
        keys.Clear();
        _spareKeySets.Push(keys);
    }

    public IEnumerable<(bool Legacy, long Start, TKey Key, T Value)> Entries()
    {
        foreach (var (start, entries) in _panes)
        foreach (var (key, value) in entries) yield return (false, start, key, value);
        foreach (var (start, entries) in _legacyWindows)
        foreach (var (key, value) in entries) yield return (true, start, key, value);
    }

    // ---- deltas and snapshots -----------------------------------------------------------------

    public void WriteDelta(MessagePackWriter writer) => PaneChanges.WriteDelta(writer, _spec.Tumbling, WriteUpdates, _removed, _firedLegacy);

    private void WriteUpdates(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_updated.Count);
        foreach (var (start, keys) in _updated)
        {
            var entries = _panes[start];
            writer.WriteArrayHeader(2);
            writer.Write(start);
            writer.WriteArrayHeader(keys.Count);
            foreach (var key in keys)
            {
                writer.WriteArrayHeader(2);
                _spec.KeyFormatter.Serialize(writer, key);
                _spec.ValueFormatter.Serialize(writer, entries[key]);
            }
        }
    }

    public void ApplyDelta(ref MessagePackReader reader) => PaneChanges.ReadDelta(ref reader, _spec, this);

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId)
    {
        if (_spec.Tumbling)
        {
            WriteWindows(writer, _panes);
            return Array.Empty<SharedStateUpload>();
        }

        writer.WriteMapHeader(2);
        writer.Write(PaneChanges.PaneUpdates);
        WriteWindows(writer, _panes);
        writer.Write(PaneChanges.WindowUpdates);
        WriteWindows(writer, _legacyWindows);
        return Array.Empty<SharedStateUpload>();
    }

    private void WriteWindows(MessagePackWriter writer, SortedDictionary<long, Dictionary<TKey, T>> windows)
    {
        writer.WriteArrayHeader(windows.Count);
        foreach (var (start, entries) in windows)
        {
            writer.WriteArrayHeader(2);
            writer.Write(start);
            writer.WriteArrayHeader(entries.Count);
            foreach (var (key, value) in entries)
            {
                writer.WriteArrayHeader(2);
                _spec.KeyFormatter.Serialize(writer, key);
                _spec.ValueFormatter.Serialize(writer, value);
            }
        }
    }

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files)
    {
        if (format == SharedStateFileSet.Format)
            throw new InvalidOperationException($"The snapshot of window '{_spec.OperatorId}' lists the files of the RocksDB state backend; this run keeps state in memory.");
        var reader = new MessagePackReader(part.Span);
        PaneChanges.ReadSnapshot(ref reader, _spec, this);
    }

    void IPaneTarget<TKey, T>.Reset() => Clear();

    void IPaneTarget<TKey, T>.Window(bool legacy, long start, bool snapshot)
    {
        var windows = legacy ? _legacyWindows : _panes;
        if (!windows.TryGetValue(start, out _reading)) windows[start] = _reading = new Dictionary<TKey, T>();
        else if (snapshot) throw new MessagePackException($"Operator '{_spec.OperatorId}' holds window {start} twice.");
        _readingStart = start;
        _readingSnapshot = snapshot;
        _cachedEntries = null;
    }

    void IPaneTarget<TKey, T>.Entry(TKey key, ReadOnlySpan<byte> keyBytes, T value)
    {
        if (!_readingSnapshot) _reading![key] = value;
        else if (!_reading!.TryAdd(key, value)) throw new MessagePackException($"Window {_readingStart} of operator '{_spec.OperatorId}' holds key {key} twice.");
    }

    void IPaneTarget<TKey, T>.Remove(bool legacy, long start)
    {
        (legacy ? _legacyWindows : _panes).Remove(start);
        if (start == _cachedStart) _cachedEntries = null;
    }
}

/// <summary>Where <see cref="PaneChanges"/> puts what it reads: a pane store.</summary>
internal interface IPaneTarget<TKey, T> where TKey : notnull
{
    /// <summary>The whole state follows: drop what is held.</summary>
    void Reset();

    /// <summary>The entries that follow belong to this pane (or legacy window); in a snapshot, a start held already is damage.</summary>
    void Window(bool legacy, long start, bool snapshot);

    /// <summary>An entry of the window named last (<paramref name="keyBytes"/>: the key as stored); in a snapshot, a key twice is damage.</summary>
    void Entry(TKey key, ReadOnlySpan<byte> keyBytes, T value);

    /// <summary>The window fired or the pane was removed.</summary>
    void Remove(bool legacy, long start);
}

/// <summary>
/// The one layout of an event-time window's snapshots (on the heap) and deltas (on every backend), and its one reader.
/// </summary>
/// <remarks>
/// Tumbling: snapshot <c>[[start, [[key, value], ...]], ...]</c>, delta <c>{0: updated entries in that form, 1: [fired
/// start, ...]}</c>. Hopping: snapshot <c>{2: panes in that form, 0: legacy windows}</c>, delta <c>{2: updated pane
/// entries, 3: [removed pane, ...], 1: [fired legacy window, ...]}</c>. Builds before panes kept whole hopping windows
/// in the tumbling formats; such state is read as legacy windows. Builds before incremental deltas wrote the whole state
/// as each delta (an array, not a map).
/// </remarks>
internal static class PaneChanges
{
    public const long WindowUpdates = 0, FiredWindows = 1, PaneUpdates = 2, RemovedPanes = 3;

    /// <summary>Writes a batch's delta: <paramref name="writeUpdates"/> writes the updated entries per pane as <c>[[start, [[key, value], ...]], ...]</c>.</summary>
    public static void WriteDelta(MessagePackWriter writer, bool tumbling, Action<MessagePackWriter> writeUpdates, IReadOnlyCollection<long> removedPanes, IReadOnlyCollection<long> firedLegacy)
    {
        if (tumbling)
        {
            writer.WriteMapHeader(2);
            writer.Write(WindowUpdates);
            writeUpdates(writer);
            writer.Write(FiredWindows);
            WriteStarts(writer, removedPanes);
            return;
        }

        writer.WriteMapHeader(3);
        writer.Write(PaneUpdates);
        writeUpdates(writer);
        writer.Write(RemovedPanes);
        WriteStarts(writer, removedPanes);
        writer.Write(FiredWindows);
        WriteStarts(writer, firedLegacy);
    }

    private static void WriteStarts(MessagePackWriter writer, IReadOnlyCollection<long> starts)
    {
        writer.WriteArrayHeader(starts.Count);
        foreach (long start in starts) writer.Write(start);
    }

    /// <summary>Reads a snapshot of the heap's layout into an emptied <paramref name="target"/>.</summary>
    public static void ReadSnapshot<TKey, T>(ref MessagePackReader reader, PaneStoreSpec<TKey, T> spec, IPaneTarget<TKey, T> target) where TKey : notnull
    {
        target.Reset();
        if (reader.NextType == MessagePackType.Map) ReadChanges(ref reader, spec, target);
        else ReadWindows(ref reader, spec, target, legacy: !spec.Tumbling, snapshot: true); // tumbling, or whole hopping windows of a build before panes
    }

    /// <summary>Applies a delta to <paramref name="target"/> (the whole state, for a delta of a build before incremental deltas).</summary>
    public static void ReadDelta<TKey, T>(ref MessagePackReader reader, PaneStoreSpec<TKey, T> spec, IPaneTarget<TKey, T> target) where TKey : notnull
    {
        if (reader.NextType != MessagePackType.Map) ReadSnapshot(ref reader, spec, target);
        else ReadChanges(ref reader, spec, target);
    }

    /// <summary>A map of changes: entries of windows (0) or panes (2), fired windows (1), removed panes (3).</summary>
    private static void ReadChanges<TKey, T>(ref MessagePackReader reader, PaneStoreSpec<TKey, T> spec, IPaneTarget<TKey, T> target) where TKey : notnull
    {
        // Keys 0 and 1 name whole windows: the panes themselves when tumbling, legacy windows when hopping.
        bool windowsAreLegacy = !spec.Tumbling;
        int fields = reader.ReadMapHeader();
        for (int f = 0; f < fields; f++)
        {
            long field = reader.ReadInt64();
            switch (field)
            {
                case WindowUpdates:
                    ReadWindows(ref reader, spec, target, windowsAreLegacy, snapshot: false);
                    break;
                case PaneUpdates when !spec.Tumbling:
                    ReadWindows(ref reader, spec, target, legacy: false, snapshot: false);
                    break;
                case FiredWindows:
                    RemoveStarts(ref reader, target, windowsAreLegacy);
                    break;
                case RemovedPanes when !spec.Tumbling:
                    RemoveStarts(ref reader, target, legacy: false);
                    break;
                default:
                    throw new MessagePackException($"The state of window '{spec.OperatorId}' has field {field}, which a {(spec.Tumbling ? "tumbling" : "hopping")} window does not write.");
            }
        }
    }

    private static void ReadWindows<TKey, T>(ref MessagePackReader reader, PaneStoreSpec<TKey, T> spec, IPaneTarget<TKey, T> target, bool legacy, bool snapshot) where TKey : notnull
    {
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A window of operator '{spec.OperatorId}' is not a [start, entries] pair.");
            long start = reader.ReadInt64();
            target.Window(legacy, start, snapshot);
            int n = reader.ReadArrayHeader();
            for (int e = 0; e < n; e++)
            {
                if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An entry of window {start} of operator '{spec.OperatorId}' is not a [key, value] pair.");
                var keyBytes = reader.ReadRaw();
                var keyReader = new MessagePackReader(keyBytes);
                TKey key = spec.KeyFormatter.Deserialize(ref keyReader);
                if (key is null) throw new MessagePackException($"Window {start} of operator '{spec.OperatorId}' holds a null key.");
                T value = spec.ValueFormatter.Deserialize(ref reader);
                target.Entry(key, keyBytes, value);
            }
        }
    }

    private static void RemoveStarts<TKey, T>(ref MessagePackReader reader, IPaneTarget<TKey, T> target, bool legacy) where TKey : notnull
    {
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++) target.Remove(legacy, reader.ReadInt64());
    }
}

/// <summary>
/// Reads the panes' layout for <c>dump-state</c>: one line per key and pane (<c>pane</c>: its start), and per key
/// and legacy window of an older build (<c>window</c>: its start). A hopping window's snapshot is the map
/// <c>{2: panes, 0: legacy windows}</c>, a tumbling window's the panes alone.
/// </summary>
internal static class PaneLayout
{
    private const long LegacyWindows = 0, Panes = 2;

    public static void Dump(ref MessagePackReader r, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        if (r.NextType != MessagePackType.Map)
        {
            DumpWindows(ref r, "pane", fieldNames, lines);
            return;
        }

        int fields = r.ReadMapHeader();
        for (int f = 0; f < fields; f++)
        {
            long field = r.ReadInt64();
            if (field is Panes or LegacyWindows) DumpWindows(ref r, field == Panes ? "pane" : "window", fieldNames, lines);
            else r.Skip();
        }
    }

    private static void DumpWindows(ref MessagePackReader r, string label, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        int count = r.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            r.ReadArrayHeader();
            long start = r.ReadInt64();
            int entries = r.ReadArrayHeader();
            for (int e = 0; e < entries; e++)
            {
                if (lines.Full)
                {
                    r.Skip();
                    continue;
                }

                r.ReadArrayHeader();
                var json = lines.Begin();
                json.WriteNumber(label, start);
                json.WritePropertyName("key");
                Json.Write(ref r, json, null);
                json.WritePropertyName("value");
                Json.Write(ref r, json, fieldNames);
                lines.End();
            }
        }
    }
}
