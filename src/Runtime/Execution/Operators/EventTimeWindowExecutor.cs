using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.Execution;

/// <summary>What windows and sessions share about the accumulators their combine functions return.</summary>
internal static class Accumulator
{
    /// <summary>
    /// Whether the combine function handed back the accumulator it was given (a max whose new record is lower,
    /// a first): the state is as it was, so the key has nothing to add to the batch's delta. Reference types only.
    /// </summary>
    public static bool Unchanged<T>(T before, T after) => !typeof(T).IsValueType && ReferenceEquals(before, after);
}

/// <summary>
/// Event-time tumbling or hopping windows by key. State is kept per pane: a pane is [start, start + pane) with
/// pane = gcd(size, slide), so every window is a run of whole panes, a record updates the one pane that holds
/// it instead of each of its size/slide windows, and a window combines its panes (in time order) when it fires.
/// For tumbling windows a pane is a window. A record all of whose windows fired is late and dropped (counted in
/// the batch's progress). A window fires when the watermark reaches its end: every key's result is emitted in
/// this batch, ordered by window start and then by the key's serialized bytes; a pane is removed once the last
/// window holding it has fired.
/// </summary>
/// <remarks>
/// State formats. Tumbling: snapshot <c>[[start, [[key, value], ...]], ...]</c>, delta
/// <c>{0: updated entries in that form, 1: [fired start, ...]}</c>. Hopping: snapshot <c>{2: panes in that
/// form, 0: legacy windows}</c>, delta <c>{2: updated pane entries, 3: [removed pane, ...], 1: [fired legacy
/// window, ...]}</c>. Builds before panes kept whole hopping windows in the tumbling formats; such state is
/// restored as legacy windows, which hold the records seen before the upgrade and are combined with the
/// panes when they fire, so an upgrade neither loses nor double-counts a record.
/// </remarks>
internal sealed class EventTimeWindowExecutor<TKey, T> : OperatorExecutor<EventWindow<TKey, T>>, IStatefulExecutor where TKey : notnull
{
    private const long WindowUpdates = 0, FiredWindows = 1, PaneUpdates = 2, RemovedPanes = 3;

    private readonly OperatorExecutor<T> _input;
    private readonly EventTimeWindowNode<TKey, T> _node;
    private readonly IWatermark _watermark;
    private readonly long _paneMs;
    private readonly bool _tumbling;
    private readonly SortedDictionary<long, Dictionary<TKey, T>> _panes = new();
    private readonly SortedDictionary<long, Dictionary<TKey, T>> _legacyWindows = new();

    // What this batch changed, for its delta: the keys updated per pane, the panes removed, the legacy windows fired.
    private readonly Dictionary<long, HashSet<TKey>> _updated = new();
    private readonly List<long> _removedPanes = new();
    private readonly List<long> _firedLegacy = new();

    // Emptied panes and key sets kept for reuse: a busy pane's table is large enough for the large object
    // heap, and allocating one per pane per batch there turns collections into full ones.
    private readonly Stack<Dictionary<TKey, T>> _sparePanes = new();
    private readonly Stack<HashSet<TKey>> _spareKeySets = new();
    private readonly Dictionary<TKey, T> _combined = new();
    private readonly List<(TKey Key, T Value)> _firing = new();
    private readonly SortedSet<long> _toFire = new();

    public EventTimeWindowExecutor(EventTimeWindowNode<TKey, T> node, OperatorExecutor<T> input, IWatermark watermark) : base(node)
    {
        _node = node;
        _input = input;
        _watermark = watermark;
        _tumbling = node.SlideMs == node.SizeMs;
        _paneMs = Gcd(node.SizeMs, node.SlideMs);
    }

    /// <summary>
    /// Format 2: panes (a hopping window's snapshot is a map of pane and legacy-window updates; deltas are
    /// incremental). Format 1, before format numbers were recorded, stored whole windows (an array), which
    /// <see cref="RestoreSnapshot"/> still reads: an entry without a format number is read by its shape.
    /// </summary>
    public int StateFormat => 2;

    public long KeyCount => _panes.Values.Sum(w => (long)w.Count) + _legacyWindows.Values.Sum(w => (long)w.Count);

    private static long Gcd(long a, long b) => b == 0 ? a : Gcd(b, a % b);

    /// <summary><paramref name="time"/> rounded down to a multiple of <paramref name="step"/> (epoch-aligned).</summary>
    private static long Floor(long time, long step)
    {
        long r = time % step;
        return time - (r < 0 ? r + step : r);
    }

    public override void Execute(BatchContext batch)
    {
        long previous = _watermark.Previous;
        long size = _node.SizeMs, slide = _node.SlideMs, pane = _paneMs;
        long cachedStart = long.MinValue;
        Dictionary<TKey, T>? cached = null;
        HashSet<TKey>? cachedUpdated = null;
        long late = 0;
        foreach (var keys in _updated.Values) Recycle(keys);
        _updated.Clear();
        _removedPanes.Clear();
        _firedLegacy.Clear();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            long time = _node.TimeSelector(record);
            TKey key = KeyCheck.NotNull(_node.KeySelector(record), Node);
            if (Floor(time, slide) + size <= previous)
            {
                late++; // the last window that holds it, and so every one, has fired
                continue;
            }

            long start = Floor(time, pane);
            if (start != cachedStart)
            {
                if (!_panes.TryGetValue(start, out cached)) _panes[start] = cached = _sparePanes.TryPop(out var spare) ? spare : new Dictionary<TKey, T>();
                if (!_updated.TryGetValue(start, out cachedUpdated))
                    _updated[start] = cachedUpdated = _spareKeySets.TryPop(out var spareKeys) ? spareKeys : new HashSet<TKey>();
                cachedStart = start;
            }

            ref T? slot = ref CollectionsMarshal.GetValueRefOrAddDefault(cached!, key, out bool exists);
            if (exists)
            {
                T combined = _node.Function(slot!, record);
                if (Accumulator.Unchanged(slot!, combined)) continue; // a max or a first kept its value: nothing for the delta
                slot = combined;
            }
            else
            {
                slot = record;
            }

            cachedUpdated!.Add(key);
        }

        batch.AddLate(late);
        Fire(previous, _watermark.Current);
    }

    /// <summary>Emits the windows whose end is in (previous, current] and removes the panes no window needs any more.</summary>
    private void Fire(long previous, long current)
    {
        long size = _node.SizeMs, slide = _node.SlideMs;
        bool everything = current == long.MaxValue;
        _toFire.Clear();
        foreach (long p in _panes.Keys)
        {
            // The earliest window holding p starts at the first multiple of slide after p - size; if even it
            // is still open, so is every window holding p or a later pane.
            if (!everything && Floor(p - size, slide) + slide + size > current) break;
            for (long s = Floor(p, slide); s > p - size; s -= slide)
            {
                if (s + size <= previous) break;
                if (everything || s + size <= current) _toFire.Add(s);
            }
        }

        foreach (long s in _legacyWindows.Keys)
        {
            if (!everything && s + size > current) break;
            _toFire.Add(s);
        }

        foreach (long s in _toFire) EmitWindow(s);

        while (_panes.Count > 0)
        {
            var (p, entries) = _panes.First();
            if (!everything && Floor(p, slide) + size > current) break; // a window holding p is still open
            _panes.Remove(p);
            if (_updated.Remove(p, out var keys)) Recycle(keys);
            _removedPanes.Add(p);
            entries.Clear();
            _sparePanes.Push(entries);
        }
    }

    private void EmitWindow(long start)
    {
        long end = start + _node.SizeMs;
        _firing.Clear();
        if (_tumbling && _legacyWindows.Count == 0)
        {
            if (_panes.TryGetValue(start, out var only))
                foreach (var (key, value) in only) _firing.Add((key, value));
        }
        else
        {
            _combined.Clear();
            if (_legacyWindows.Remove(start, out var legacy))
            {
                _firedLegacy.Add(start);
                foreach (var (key, value) in legacy) _combined[key] = value;
            }

            for (long p = start; p < end; p += _paneMs)
            {
                if (!_panes.TryGetValue(p, out var entries)) continue;
                foreach (var (key, value) in entries)
                {
                    ref T? slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_combined, key, out bool exists);
                    slot = exists ? _node.Function(slot!, value) : value;
                }
            }

            foreach (var (key, value) in _combined) _firing.Add((key, value));
            _combined.Clear();
        }

        KeyOrder.Sort(_firing, _node.KeyFormatter);
        foreach (var (key, value) in _firing) Output.Add(new EventWindow<TKey, T>(key, value, start, end));
        _firing.Clear();
    }

    private void Recycle(HashSet<TKey> keys)
    {
        keys.Clear();
        _spareKeySets.Push(keys);
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        if (_tumbling)
        {
            WriteWindows(writer, _panes);
            return;
        }

        writer.WriteMapHeader(2);
        writer.Write(PaneUpdates);
        WriteWindows(writer, _panes);
        writer.Write(WindowUpdates);
        WriteWindows(writer, _legacyWindows);
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
                _node.KeyFormatter.Serialize(writer, key);
                _node.ValueFormatter.Serialize(writer, value);
            }
        }
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        _panes.Clear();
        _legacyWindows.Clear();
        if (reader.NextType == MessagePackType.Map) ReadChanges(ref reader);
        else ReadWindows(ref reader, _tumbling ? _panes : _legacyWindows, replace: false);
    }

    public void Clear()
    {
        _panes.Clear();
        _legacyWindows.Clear();
        _updated.Clear();
        _removedPanes.Clear();
        _firedLegacy.Clear();
    }

    /// <summary>The batch's changes (see the class remarks for the formats).</summary>
    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        if (_tumbling)
        {
            writer.WriteMapHeader(2);
            writer.Write(WindowUpdates);
            WriteUpdates(writer);
            writer.Write(FiredWindows);
            WriteStarts(writer, _removedPanes);
            return;
        }

        writer.WriteMapHeader(3);
        writer.Write(PaneUpdates);
        WriteUpdates(writer);
        writer.Write(RemovedPanes);
        WriteStarts(writer, _removedPanes);
        writer.Write(FiredWindows);
        WriteStarts(writer, _firedLegacy);
    }

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
                _node.KeyFormatter.Serialize(writer, key);
                _node.ValueFormatter.Serialize(writer, entries[key]);
            }
        }
    }

    private static void WriteStarts(MessagePackWriter writer, List<long> starts)
    {
        writer.WriteArrayHeader(starts.Count);
        foreach (long start in starts) writer.Write(start);
    }

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        if (reader.NextType != MessagePackType.Map)
        {
            RestoreSnapshot(ref reader, storedVersion); // builds before incremental deltas wrote the whole state
            return;
        }

        CheckVersion(storedVersion);
        ReadChanges(ref reader);
    }

    private void CheckVersion(long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Window '{Node.Id}' cannot migrate state from version {storedVersion}.");
    }

    /// <summary>Applies a map of changes: entries of windows (0) or panes (2), fired windows (1), removed panes (3).</summary>
    private void ReadChanges(ref MessagePackReader reader)
    {
        // Keys 0 and 1 name whole windows: the panes themselves when tumbling, legacy windows when hopping.
        var windows = _tumbling ? _panes : _legacyWindows;
        int fields = reader.ReadMapHeader();
        for (int f = 0; f < fields; f++)
        {
            long field = reader.ReadInt64();
            switch (field)
            {
                case WindowUpdates:
                    ReadWindows(ref reader, windows, replace: true);
                    break;
                case PaneUpdates when !_tumbling:
                    ReadWindows(ref reader, _panes, replace: true);
                    break;
                case FiredWindows:
                    RemoveStarts(ref reader, windows);
                    break;
                case RemovedPanes when !_tumbling:
                    RemoveStarts(ref reader, _panes);
                    break;
                default:
                    throw new MessagePackException($"The state of window '{Node.Id}' has field {field}, which a {(_tumbling ? "tumbling" : "hopping")} window does not write.");
            }
        }
    }

    private void ReadWindows(ref MessagePackReader reader, SortedDictionary<long, Dictionary<TKey, T>> windows, bool replace)
    {
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A window of operator '{Node.Id}' is not a [start, entries] pair.");
            long start = reader.ReadInt64();
            if (!windows.TryGetValue(start, out var entries)) windows[start] = entries = new Dictionary<TKey, T>();
            else if (!replace) throw new MessagePackException($"Operator '{Node.Id}' holds window {start} twice.");
            int n = reader.ReadArrayHeader();
            for (int e = 0; e < n; e++)
            {
                if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An entry of window {start} of operator '{Node.Id}' is not a [key, value] pair.");
                TKey key = _node.KeyFormatter.Deserialize(ref reader);
                if (key is null) throw new MessagePackException($"Window {start} of operator '{Node.Id}' holds a null key.");
                T value = _node.ValueFormatter.Deserialize(ref reader);
                if (replace) entries[key] = value;
                else if (!entries.TryAdd(key, value)) throw new MessagePackException($"Window {start} of operator '{Node.Id}' holds key {key} twice.");
            }
        }
    }

    private static void RemoveStarts(ref MessagePackReader reader, SortedDictionary<long, Dictionary<TKey, T>> windows)
    {
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++) windows.Remove(reader.ReadInt64());
    }
}
