using System.Collections.Generic;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>
/// Keyed state in time panes (an event-time window's state): for each pane start, the value per key; the keys
/// each batch updated per pane and the panes it removed (so a batch's delta costs what the batch changed); and
/// the one layout of panes in snapshots and deltas. Keyed state with a namespace, as Flink keeps window state:
/// the namespace is the pane.
/// </summary>
/// <remarks>
/// Layout (a window operator's format 2): panes as <c>[[start, [[key, value], ...]], ...]</c>, removed panes as
/// <c>[start, ...]</c>. Emptied panes and key sets are kept for reuse: a busy pane's table is large enough for
/// the large object heap, and allocating one per pane per batch there turns collections into full ones.
/// </remarks>
internal sealed class PaneStore<TKey, T> where TKey : notnull
{
    private readonly string _operatorId;
    private readonly IMessagePackFormatter<TKey> _keyFormatter;
    private readonly IMessagePackFormatter<T> _valueFormatter;
    private readonly Dictionary<long, HashSet<TKey>> _updated = new();
    private readonly List<long> _removed = new();
    private readonly Stack<Dictionary<TKey, T>> _sparePanes = new();
    private readonly Stack<HashSet<TKey>> _spareKeySets = new();

    public PaneStore(string operatorId, IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<T> valueFormatter)
    {
        _operatorId = operatorId;
        _keyFormatter = keyFormatter;
        _valueFormatter = valueFormatter;
    }

    /// <summary>The panes by start, in time order. Written only through this class (and by a restore, through <see cref="Read"/>).</summary>
    public SortedDictionary<long, Dictionary<TKey, T>> Panes { get; } = new();

    public long KeyCount
    {
        get
        {
            long count = 0;
            foreach (var entries in Panes.Values) count += entries.Count;
            return count;
        }
    }

    /// <summary>Key-panes the current batch updated.</summary>
    public long UpdatedCount
    {
        get
        {
            long count = 0;
            foreach (var keys in _updated.Values) count += keys.Count;
            return count;
        }
    }

    /// <summary>Starts a batch: forgets what the previous batch changed.</summary>
    public void BeginBatch()
    {
        foreach (var keys in _updated.Values) Recycle(keys);
        _updated.Clear();
        _removed.Clear();
    }

    /// <summary>The pane at <paramref name="start"/> (added when missing) and the set of its keys this batch updated, to add to.</summary>
    public (Dictionary<TKey, T> Entries, HashSet<TKey> Updated) Open(long start)
    {
        if (!Panes.TryGetValue(start, out var entries)) Panes[start] = entries = _sparePanes.TryPop(out var spare) ? spare : new Dictionary<TKey, T>();
        if (!_updated.TryGetValue(start, out var updated)) _updated[start] = updated = _spareKeySets.TryPop(out var spareKeys) ? spareKeys : new HashSet<TKey>();
        return (entries, updated);
    }

    /// <summary>Removes the pane at <paramref name="start"/>; the removal goes into the batch's delta.</summary>
    public void Remove(long start)
    {
        if (!Panes.Remove(start, out var entries)) return;
        if (_updated.Remove(start, out var keys)) Recycle(keys);
        _removed.Add(start);
        entries.Clear();
        _sparePanes.Push(entries);
    }

    /// <summary>Drops all panes and what the batch changed.</summary>
    public void Clear()
    {
        Panes.Clear();
        _updated.Clear();
        _removed.Clear();
    }

    private void Recycle(HashSet<TKey> keys)
    {
        keys.Clear();
        _spareKeySets.Push(keys);
    }

    /// <summary>Every pane, in the layout above.</summary>
    public void WriteAll(MessagePackWriter writer) => WriteWindows(writer, Panes);

    /// <summary>The entries this batch updated, per pane, in the layout above.</summary>
    public void WriteUpdates(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_updated.Count);
        foreach (var (start, keys) in _updated)
        {
            var entries = Panes[start];
            writer.WriteArrayHeader(2);
            writer.Write(start);
            writer.WriteArrayHeader(keys.Count);
            foreach (var key in keys)
            {
                writer.WriteArrayHeader(2);
                _keyFormatter.Serialize(writer, key);
                _valueFormatter.Serialize(writer, entries[key]);
            }
        }
    }

    /// <summary>The starts of the panes this batch removed.</summary>
    public void WriteRemoved(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_removed.Count);
        foreach (long start in _removed) writer.Write(start);
    }

    /// <summary>Windows or panes by start in the layout above (the legacy whole windows of older builds share it).</summary>
    public void WriteWindows(MessagePackWriter writer, SortedDictionary<long, Dictionary<TKey, T>> windows)
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
                _keyFormatter.Serialize(writer, key);
                _valueFormatter.Serialize(writer, value);
            }
        }
    }

    /// <summary>
    /// Reads windows or panes in the layout above into <paramref name="windows"/> (the panes by default):
    /// <paramref name="replace"/> for a delta's updates, otherwise a snapshot's, where a start or key twice is damage.
    /// </summary>
    public void Read(ref MessagePackReader reader, SortedDictionary<long, Dictionary<TKey, T>>? windows = null, bool replace = false)
    {
        windows ??= Panes;
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A window of operator '{_operatorId}' is not a [start, entries] pair.");
            long start = reader.ReadInt64();
            if (!windows.TryGetValue(start, out var entries)) windows[start] = entries = new Dictionary<TKey, T>();
            else if (!replace) throw new MessagePackException($"Operator '{_operatorId}' holds window {start} twice.");
            int n = reader.ReadArrayHeader();
            for (int e = 0; e < n; e++)
            {
                if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An entry of window {start} of operator '{_operatorId}' is not a [key, value] pair.");
                TKey key = _keyFormatter.Deserialize(ref reader);
                if (key is null) throw new MessagePackException($"Window {start} of operator '{_operatorId}' holds a null key.");
                T value = _valueFormatter.Deserialize(ref reader);
                if (replace) entries[key] = value;
                else if (!entries.TryAdd(key, value)) throw new MessagePackException($"Window {start} of operator '{_operatorId}' holds key {key} twice.");
            }
        }
    }

    /// <summary>Removes the windows or panes whose starts a delta lists (a recovery: not tracked as this batch's change).</summary>
    public static void RemoveStarts(ref MessagePackReader reader, SortedDictionary<long, Dictionary<TKey, T>> windows)
    {
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++) windows.Remove(reader.ReadInt64());
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
