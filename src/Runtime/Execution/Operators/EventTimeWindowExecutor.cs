using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;

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
    private readonly PaneStore<TKey, T> _store;
    private readonly SortedDictionary<long, Dictionary<TKey, T>> _legacyWindows = new();

    // The legacy windows this batch fired, for its delta (the panes' changes are tracked by the store).
    private readonly List<long> _firedLegacy = new();
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
        _store = new PaneStore<TKey, T>(node.Id, node.KeyFormatter, node.ValueFormatter);
    }

    private SortedDictionary<long, Dictionary<TKey, T>> Panes => _store.Panes;

    /// <summary>
    /// Format 2: panes (a hopping window's snapshot is a map of pane and legacy-window updates; deltas are
    /// incremental). Format 1, before format numbers were recorded, stored whole windows (an array), which
    /// <see cref="RestoreSnapshot"/> still reads: an entry without a format number is read by its shape.
    /// </summary>
    public int StateFormat => 2;

    public long KeyCount => _store.KeyCount + _legacyWindows.Values.Sum(w => (long)w.Count);

    public long? UpdatedCount => _store.UpdatedCount;

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
        _store.BeginBatch();
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
                (cached, cachedUpdated) = _store.Open(start);
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
        foreach (long p in Panes.Keys)
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

        while (Panes.Count > 0)
        {
            long p = Panes.First().Key;
            if (!everything && Floor(p, slide) + size > current) break; // a window holding p is still open
            _store.Remove(p);
        }
    }

    private void EmitWindow(long start)
    {
        long end = start + _node.SizeMs;
        _firing.Clear();
        if (_tumbling && _legacyWindows.Count == 0)
        {
            if (Panes.TryGetValue(start, out var only))
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
                if (!Panes.TryGetValue(p, out var entries)) continue;
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

    public void WriteSnapshot(MessagePackWriter writer)
    {
        if (_tumbling)
        {
            _store.WriteAll(writer);
            return;
        }

        writer.WriteMapHeader(2);
        writer.Write(PaneUpdates);
        _store.WriteAll(writer);
        writer.Write(WindowUpdates);
        _store.WriteWindows(writer, _legacyWindows);
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        Panes.Clear();
        _legacyWindows.Clear();
        if (reader.NextType == MessagePackType.Map) ReadChanges(ref reader);
        else _store.Read(ref reader, _tumbling ? Panes : _legacyWindows, replace: false);
    }

    public void Clear()
    {
        _store.Clear();
        _legacyWindows.Clear();
        _firedLegacy.Clear();
    }

    /// <summary>The batch's changes (see the class remarks for the formats).</summary>
    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        if (_tumbling)
        {
            writer.WriteMapHeader(2);
            writer.Write(WindowUpdates);
            _store.WriteUpdates(writer);
            writer.Write(FiredWindows);
            _store.WriteRemoved(writer);
            return;
        }

        writer.WriteMapHeader(3);
        writer.Write(PaneUpdates);
        _store.WriteUpdates(writer);
        writer.Write(RemovedPanes);
        _store.WriteRemoved(writer);
        writer.Write(FiredWindows);
        WriteStarts(writer, _firedLegacy);
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
        var windows = _tumbling ? Panes : _legacyWindows;
        int fields = reader.ReadMapHeader();
        for (int f = 0; f < fields; f++)
        {
            long field = reader.ReadInt64();
            switch (field)
            {
                case WindowUpdates:
                    _store.Read(ref reader, windows, replace: true);
                    break;
                case PaneUpdates when !_tumbling:
                    _store.Read(ref reader, Panes, replace: true);
                    break;
                case FiredWindows:
                    PaneStore<TKey, T>.RemoveStarts(ref reader, windows);
                    break;
                case RemovedPanes when !_tumbling:
                    PaneStore<TKey, T>.RemoveStarts(ref reader, Panes);
                    break;
                default:
                    throw new MessagePackException($"The state of window '{Node.Id}' has field {field}, which a {(_tumbling ? "tumbling" : "hopping")} window does not write.");
            }
        }
    }
}
