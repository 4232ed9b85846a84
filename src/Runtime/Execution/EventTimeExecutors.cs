using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.Execution;

/// <summary>
/// The event-time progress an operator sees in a batch. <see cref="Previous"/> is the watermark at the end of
/// the previous batch: records older than it are late (their windows have fired). <see cref="Current"/> is the
/// watermark after this batch's input: windows that end at or before it fire in this batch. Both are
/// functions of the logged batch ranges, so a replayed batch fires exactly the same windows.
/// </summary>
internal interface IWatermark
{
    long Previous { get; }

    long Current { get; }
}

internal sealed class MinimumWatermark : IWatermark
{
    private readonly IWatermark[] _inputs;

    public MinimumWatermark(IWatermark[] inputs) => _inputs = inputs;

    public long Previous => _inputs.Min(i => i.Previous);

    public long Current => _inputs.Min(i => i.Current);
}

/// <summary>
/// Passes records through and advances the watermark to (largest event time seen) − (allowed out-of-orderness).
/// When every source upstream is bounded and fully read, the watermark jumps to the end of time so that all
/// remaining windows fire. State: the largest event time and the watermark.
/// </summary>
internal sealed class WatermarkExecutor<T> : OperatorExecutor<T>, IStatefulExecutor, IWatermark
{
    private readonly OperatorExecutor<T> _input;
    private readonly WatermarkNode<T> _node;
    private readonly IReadOnlyList<string> _sources;
    private long _maxTime = long.MinValue;

    public WatermarkExecutor(WatermarkNode<T> node, OperatorExecutor<T> input, IReadOnlyList<string> sources) : base(node)
    {
        _node = node;
        _input = input;
        _sources = sources;
    }

    public long Previous { get; private set; } = long.MinValue;

    public long Current { get; private set; } = long.MinValue;

    /// <summary>Format 1: the watermark, one integer.</summary>
    public int StateFormat => 1;

    public long KeyCount => 0;

    public override void Execute(BatchContext batch)
    {
        Previous = Current;
        var input = _input.Output;
        Output.AddRange(input);
        long max = _maxTime;
        var time = _node.TimeSelector;
        foreach (var record in CollectionsMarshal.AsSpan(input))
        {
            long t = time(record);
            if (t > max) max = t;
        }

        _maxTime = max;
        bool complete = _sources.Count > 0 && _sources.All(batch.FinishedSources.Contains);
        if (complete) Current = long.MaxValue;
        else if (max != long.MinValue) Current = Math.Max(Current, max - _node.MaxOutOfOrdernessMs);
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        writer.Write(_maxTime);
        writer.Write(Current);
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"The state of watermark '{Node.Id}' is not a [max event time, watermark] pair.");
        _maxTime = reader.ReadInt64();
        Current = Previous = reader.ReadInt64();
    }

    public void Clear()
    {
        _maxTime = long.MinValue;
        Current = Previous = long.MinValue;
    }

    public void WriteDelta(MessagePackWriter writer, long batchId) => WriteSnapshot(writer);

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion) => RestoreSnapshot(ref reader, storedVersion);
}

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

/// <summary>
/// Event-time session windows by key. A record opens the window [time, time + gap) and merges with the key's
/// sessions it overlaps or touches. A session fires when the watermark reaches its end (last record's time
/// plus the gap); a record whose own window would already have fired is late and dropped. Sessions firing in
/// a batch are emitted ordered by end, then start, then key bytes.
/// </summary>
internal sealed class SessionWindowExecutor<TKey, T> : OperatorExecutor<EventWindow<TKey, T>>, IStatefulExecutor where TKey : notnull
{
    private readonly OperatorExecutor<T> _input;
    private readonly SessionWindowNode<TKey, T> _node;
    private readonly IWatermark _watermark;
    private readonly Dictionary<TKey, List<Session>> _sessions = new();
    private readonly PriorityQueue<TKey, long> _byEnd = new();
    private readonly HashSet<TKey> _changed = new(); // keys whose sessions this batch changed, for its delta

    private struct Session
    {
        public long Start;
        public long End;
        public T Value;
    }

    public SessionWindowExecutor(SessionWindowNode<TKey, T> node, OperatorExecutor<T> input, IWatermark watermark) : base(node)
    {
        _node = node;
        _input = input;
        _watermark = watermark;
    }

    /// <summary>
    /// Format 2: incremental deltas (<c>{0: changed keys}</c>). Format 1, before format numbers were recorded,
    /// wrote the whole state as each delta (an array), which <see cref="ApplyDelta"/> still reads by its shape.
    /// </summary>
    public int StateFormat => 2;

    public long KeyCount => _sessions.Count;

    public override void Execute(BatchContext batch)
    {
        long previous = _watermark.Previous, gap = _node.GapMs;
        long late = 0;
        _changed.Clear();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            long time = _node.TimeSelector(record);
            if (time + gap <= previous)
            {
                late++;
                continue;
            }

            TKey key = KeyCheck.NotNull(_node.KeySelector(record), Node);
            ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(_sessions, key, out bool exists);
            list ??= new List<Session>(1);
            var merged = new Session { Start = time, End = time + gap, Value = record };
            bool mergedAny = false, unchanged = false;
            // Sessions are kept sorted by start; merge every one the new window overlaps or touches.
            for (int i = 0; i < list.Count; i++)
            {
                var s = list[i];
                if (s.Start <= merged.End && merged.Start <= s.End)
                {
                    merged = mergedAny
                        ? new Session { Start = Math.Min(s.Start, merged.Start), End = Math.Max(s.End, merged.End), Value = s.Start <= merged.Start ? _node.Function(s.Value, merged.Value) : _node.Function(merged.Value, s.Value) }
                        : new Session { Start = Math.Min(s.Start, time), End = Math.Max(s.End, time + gap), Value = _node.Function(s.Value, record) };
                    // Inside one session whose value the function kept (a max, a first): the state is as it was.
                    unchanged = !mergedAny && merged.Start == s.Start && merged.End == s.End && Accumulator.Unchanged(s.Value, merged.Value);
                    mergedAny = true;
                    list.RemoveAt(i);
                    i--;
                }
            }

            int at = 0;
            while (at < list.Count && list[at].Start < merged.Start) at++;
            list.Insert(at, merged);
            if (!unchanged) _changed.Add(key);
            if (!mergedAny) _byEnd.Enqueue(key, merged.End);
        }

        batch.AddLate(late);
        Fire(_watermark.Current);
    }

    private void Fire(long watermark)
    {
        List<(long End, long Start, TKey Key, T Value)>? fired = null;
        var requeue = new List<(TKey, long)>();
        while (_byEnd.TryPeek(out var key, out long end) && (watermark == long.MaxValue || end <= watermark))
        {
            _byEnd.Dequeue();
            if (!_sessions.TryGetValue(key, out var list)) continue;
            for (int i = 0; i < list.Count; i++)
            {
                var s = list[i];
                if (watermark != long.MaxValue && s.End > watermark) continue;
                (fired ??= new()).Add((s.End, s.Start, key, s.Value));
                list.RemoveAt(i);
                i--;
                _changed.Add(key);
            }

            if (list.Count == 0) _sessions.Remove(key);
            else requeue.Add((key, list.Min(s => s.End)));
        }

        foreach (var (key, end) in requeue) _byEnd.Enqueue(key, end);
        if (fired is null) return;
        var ordered = fired.GroupBy(f => (f.End, f.Start)).OrderBy(g => g.Key.End).ThenBy(g => g.Key.Start);
        foreach (var group in ordered)
        {
            var sorted = KeyOrder.Sorted(group.Select(f => (f.Key, f.Value)).ToList(), _node.KeyFormatter);
            foreach (var (key, value) in sorted) Output.Add(new EventWindow<TKey, T>(key, value, group.Key.Start, group.Key.End));
        }
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_sessions.Count);
        foreach (var (key, list) in _sessions)
        {
            writer.WriteArrayHeader(2);
            _node.KeyFormatter.Serialize(writer, key);
            writer.WriteArrayHeader(list.Count);
            foreach (var s in list)
            {
                writer.WriteArrayHeader(3);
                writer.Write(s.Start);
                writer.Write(s.End);
                _node.ValueFormatter.Serialize(writer, s.Value);
            }
        }
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Session window '{Node.Id}' cannot migrate state from version {storedVersion}.");
        Clear();
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A session entry of operator '{Node.Id}' is not a [key, sessions] pair.");
            TKey key = _node.KeyFormatter.Deserialize(ref reader);
            int n = reader.ReadArrayHeader();
            var list = new List<Session>(n);
            for (int s = 0; s < n; s++)
            {
                if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A session of operator '{Node.Id}' is not a [start, end, value] triple.");
                list.Add(new Session { Start = reader.ReadInt64(), End = reader.ReadInt64(), Value = _node.ValueFormatter.Deserialize(ref reader) });
            }

            if (key is null || n == 0 || !_sessions.TryAdd(key, list)) throw new MessagePackException($"The state of operator '{Node.Id}' holds a null, empty or repeated key.");
            _byEnd.Enqueue(key, list.Min(x => x.End));
        }
    }

    public void Clear()
    {
        _sessions.Clear();
        _byEnd.Clear();
        _changed.Clear();
    }

    /// <summary>
    /// The keys whose sessions the batch changed, each with all its open sessions (none: the key is gone):
    /// <c>{0: [[key, [[start, end, value], ...]], ...]}</c>. (Builds before this one wrote the whole state, an
    /// array, which <see cref="ApplyDelta"/> still reads.)
    /// </summary>
    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        writer.WriteMapHeader(1);
        writer.Write(0L);
        writer.WriteArrayHeader(_changed.Count);
        foreach (var key in _changed)
        {
            writer.WriteArrayHeader(2);
            _node.KeyFormatter.Serialize(writer, key);
            var list = _sessions.TryGetValue(key, out var l) ? l : null;
            writer.WriteArrayHeader(list?.Count ?? 0);
            if (list is null) continue;
            foreach (var s in list)
            {
                writer.WriteArrayHeader(3);
                writer.Write(s.Start);
                writer.Write(s.End);
                _node.ValueFormatter.Serialize(writer, s.Value);
            }
        }
    }

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        if (reader.NextType != MessagePackType.Map)
        {
            RestoreSnapshot(ref reader, storedVersion);
            return;
        }

        if (storedVersion != _node.Version) throw new InvalidOperationException($"Session window '{Node.Id}' cannot migrate state from version {storedVersion}.");
        if (reader.ReadMapHeader() != 1 || reader.ReadInt64() != 0) throw new MessagePackException($"The delta of session window '{Node.Id}' is not a {{0: changed keys}} map.");
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A session entry of operator '{Node.Id}' is not a [key, sessions] pair.");
            TKey key = _node.KeyFormatter.Deserialize(ref reader);
            if (key is null) throw new MessagePackException($"The state of operator '{Node.Id}' holds a null key.");
            int n = reader.ReadArrayHeader();
            if (n == 0)
            {
                _sessions.Remove(key);
                continue;
            }

            var list = new List<Session>(n);
            for (int s = 0; s < n; s++)
            {
                if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A session of operator '{Node.Id}' is not a [start, end, value] triple.");
                list.Add(new Session { Start = reader.ReadInt64(), End = reader.ReadInt64(), Value = _node.ValueFormatter.Deserialize(ref reader) });
            }

            _sessions[key] = list;
        }

        // One queue entry per key, as after a snapshot (deltas are applied only while recovering).
        _byEnd.Clear();
        foreach (var (key, list) in _sessions) _byEnd.Enqueue(key, list.Min(x => x.End));
    }
}

/// <summary>
/// Inner join of two streams across batches. In each batch, every left record (in order) is matched with the
/// right records kept from earlier batches, then every right record with all kept left records (including
/// this batch's), so each pair is produced exactly once whichever side arrives first. With time bounds a pair
/// matches only when <c>leftTime + lower ≤ rightTime ≤ leftEnd + upper</c>; a record older than the previous
/// watermark is late and dropped, and a kept record is removed once the watermark passes the last time a
/// match could arrive (right: <c>rightTime − lower</c>; left: <c>leftEnd + upper</c>). Without bounds every
/// record is kept. The delta of a batch holds the records it appended and the watermark its expiry ran at:
/// applying it appends them and expires at that watermark, which removes exactly what the batch removed, so a
/// delta never has to rewrite the records a key keeps.
/// </summary>
internal sealed class StreamJoinExecutor<TKey, TLeft, TRight, TOut> : OperatorExecutor<TOut>, IStatefulExecutor where TKey : notnull
{
    private readonly OperatorExecutor<TLeft> _left;
    private readonly OperatorExecutor<TRight> _right;
    private readonly StreamJoinNode<TKey, TLeft, TRight, TOut> _node;
    private readonly IWatermark? _watermark;
    private readonly JoinTimeBounds<TLeft, TRight>? _bounds;
    private readonly Dictionary<TKey, Sides> _state = new();
    // One entry per kept record (a key's list is swept when any of its entries is due), also after a restore.
    private readonly PriorityQueue<TKey, long> _leftExpiry = new();
    private readonly PriorityQueue<TKey, long> _rightExpiry = new();
    private readonly HashSet<TKey> _swept = new();
    // This batch's appended records, in order, and the watermark its expiry ran at: the batch's delta.
    private readonly List<(TKey Key, TLeft Record)> _appendedLefts = new();
    private readonly List<(TKey Key, TRight Record)> _appendedRights = new();
    private long _expiredAt = long.MinValue;
    private long _records;

    // Fields of a delta (a map; snapshots and the deltas of older builds are arrays of [key, lefts, rights(, appended)]).
    private const long AppendedLefts = 0, AppendedRights = 1, ExpiredAt = 2;

    private sealed class Sides
    {
        public List<TLeft>? Left;
        public List<TRight>? Right;

        public bool IsEmpty => (Left is null || Left.Count == 0) && (Right is null || Right.Count == 0);
    }

    public StreamJoinExecutor(StreamJoinNode<TKey, TLeft, TRight, TOut> node, OperatorExecutor<TLeft> left, OperatorExecutor<TRight> right, IWatermark? watermark)
        : base(node)
    {
        _node = node;
        _left = left;
        _right = right;
        _watermark = watermark;
        _bounds = node.Bounds;
    }

    /// <summary>
    /// Format 2: appended records and the expiry watermark (a map). Format 1, before format numbers were
    /// recorded, stored per-key arrays of records, which <see cref="ApplyDelta"/> still reads by their shape.
    /// </summary>
    public int StateFormat => 2;

    public long KeyCount => _state.Count;

    private long LeftExpiry(TLeft l) => (_bounds!.LeftEndTime ?? _bounds.LeftTime)(l) + _bounds.UpperBoundMs;

    private long RightExpiry(TRight r) => _bounds!.RightTime(r) - _bounds.LowerBoundMs;

    private bool InBounds(TLeft l, TRight r)
    {
        if (_bounds is null) return true;
        long rt = _bounds.RightTime(r);
        return _bounds.LeftTime(l) + _bounds.LowerBoundMs <= rt && rt <= (_bounds.LeftEndTime ?? _bounds.LeftTime)(l) + _bounds.UpperBoundMs;
    }

    private void Emit(TLeft l, TRight r)
    {
        if (!InBounds(l, r)) return;
        var result = _node.Function(l, r);
        if (result is not null) Output.Add(result);
    }

    public override void Execute(BatchContext batch)
    {
        _appendedLefts.Clear();
        _appendedRights.Clear();
        _expiredAt = long.MinValue;
        long previous = _watermark?.Previous ?? long.MinValue;
        long late = 0;
        foreach (var l in CollectionsMarshal.AsSpan(_left.Output))
        {
            if (_bounds is not null && _bounds.LeftTime(l) < previous)
            {
                late++;
                continue;
            }

            TKey key = KeyCheck.NotNull(_node.LeftKeySelector(l), Node);
            var sides = SidesOf(key);
            if (sides.Right is { } rights) foreach (var r in rights) Emit(l, r);
            AppendLeft(key, sides, l);
            _appendedLefts.Add((key, l));
        }

        foreach (var r in CollectionsMarshal.AsSpan(_right.Output))
        {
            if (_bounds is not null && _bounds.RightTime(r) < previous)
            {
                late++;
                continue;
            }

            TKey key = KeyCheck.NotNull(_node.RightKeySelector(r), Node);
            var sides = SidesOf(key);
            if (sides.Left is { } lefts) foreach (var l in lefts) Emit(l, r);
            AppendRight(key, sides, r);
            _appendedRights.Add((key, r));
        }

        batch.AddLate(late);
        if (_bounds is not null)
        {
            _expiredAt = _watermark!.Current;
            Expire(_expiredAt);
        }
    }

    private void AppendLeft(TKey key, Sides sides, TLeft l)
    {
        (sides.Left ??= new List<TLeft>(1)).Add(l);
        _records++;
        if (_bounds is not null) _leftExpiry.Enqueue(key, LeftExpiry(l));
    }

    private void AppendRight(TKey key, Sides sides, TRight r)
    {
        (sides.Right ??= new List<TRight>(1)).Add(r);
        _records++;
        if (_bounds is not null) _rightExpiry.Enqueue(key, RightExpiry(r));
    }

    private Sides SidesOf(TKey key)
    {
        ref var sides = ref CollectionsMarshal.GetValueRefOrAddDefault(_state, key, out _);
        return sides ??= new Sides();
    }

    private void Expire(long watermark)
    {
        // A record leaves when watermark > its expiry: no record that is not late can still match it. A key
        // has one queue entry per record; its list is swept once per call.
        _swept.Clear();
        while (_leftExpiry.TryPeek(out var key, out long expiry) && expiry < watermark)
        {
            _leftExpiry.Dequeue();
            if (!_swept.Add(key) || !_state.TryGetValue(key, out var sides) || sides.Left is null) continue;
            _records -= sides.Left.RemoveAll(l => LeftExpiry(l) < watermark);
            if (sides.IsEmpty) _state.Remove(key);
        }

        _swept.Clear();
        while (_rightExpiry.TryPeek(out var key, out long expiry) && expiry < watermark)
        {
            _rightExpiry.Dequeue();
            if (!_swept.Add(key) || !_state.TryGetValue(key, out var sides) || sides.Right is null) continue;
            _records -= sides.Right.RemoveAll(r => RightExpiry(r) < watermark);
            if (sides.IsEmpty) _state.Remove(key);
        }
    }

    private void WriteEntry(MessagePackWriter writer, TKey key, Sides? sides)
    {
        writer.WriteArrayHeader(3);
        _node.KeyFormatter.Serialize(writer, key);
        var lefts = sides?.Left;
        writer.WriteArrayHeader(lefts?.Count ?? 0);
        if (lefts is not null) foreach (var l in lefts) _node.LeftFormatter.Serialize(writer, l);
        var rights = sides?.Right;
        writer.WriteArrayHeader(rights?.Count ?? 0);
        if (rights is not null) foreach (var r in rights) _node.RightFormatter.Serialize(writer, r);
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_state.Count);
        foreach (var (key, sides) in _state) WriteEntry(writer, key, sides);
    }

    /// <summary>
    /// <c>{0: [[key, left]…], 1: [[key, right]…], 2: watermark}</c>: the records this batch appended, in order,
    /// and (with time bounds) the watermark its expiry ran at.
    /// </summary>
    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        writer.WriteMapHeader(_bounds is null ? 2 : 3);
        WriteAppended(writer, AppendedLefts, _appendedLefts, _node.LeftFormatter);
        WriteAppended(writer, AppendedRights, _appendedRights, _node.RightFormatter);
        if (_bounds is null) return;
        writer.Write(ExpiredAt);
        writer.Write(_expiredAt);
    }

    /// <summary>One side's field of a delta: <paramref name="field"/>, then its appended records as [key, record] pairs.</summary>
    private void WriteAppended<TRecord>(MessagePackWriter writer, long field, List<(TKey Key, TRecord Record)> appended, IMessagePackFormatter<TRecord> formatter)
    {
        writer.Write(field);
        writer.WriteArrayHeader(appended.Count);
        foreach (var (key, record) in appended)
        {
            writer.WriteArrayHeader(2);
            _node.KeyFormatter.Serialize(writer, key);
            formatter.Serialize(writer, record);
        }
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        Clear();
        ApplyDelta(ref reader, storedVersion);
    }

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Stream join '{Node.Id}' cannot migrate state from version {storedVersion}.");
        if (reader.NextType == MessagePackType.Map)
        {
            ApplyAppendsAndExpiry(ref reader);
            return;
        }

        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            int fields = reader.ReadArrayHeader();
            if (fields is not (3 or 4)) throw new MessagePackException($"A join entry of operator '{Node.Id}' is not a [key, left records, right records(, appended)] array.");
            TKey key = _node.KeyFormatter.Deserialize(ref reader);
            if (key is null) throw new MessagePackException($"The state of operator '{Node.Id}' holds a null key.");
            int nl = reader.ReadArrayHeader();
            var lefts = nl == 0 ? null : new List<TLeft>(nl);
            for (int j = 0; j < nl; j++) lefts!.Add(_node.LeftFormatter.Deserialize(ref reader));
            int nr = reader.ReadArrayHeader();
            var rights = nr == 0 ? null : new List<TRight>(nr);
            for (int j = 0; j < nr; j++) rights!.Add(_node.RightFormatter.Deserialize(ref reader));
            if (fields == 4)
            {
                if (!reader.ReadBoolean()) throw new MessagePackException($"A join entry of operator '{Node.Id}' has four fields but is not an append.");
                var sides = SidesOf(key);
                if (lefts is not null) foreach (var l in lefts) AppendLeft(key, sides, l);
                if (rights is not null) foreach (var r in rights) AppendRight(key, sides, r);
                continue;
            }

            if (_state.TryGetValue(key, out var old)) _records -= (old.Left?.Count ?? 0) + (old.Right?.Count ?? 0);
            if (nl + nr == 0)
            {
                _state.Remove(key);
                continue;
            }

            _state[key] = new Sides { Left = lefts, Right = rights };
            _records += nl + nr;
            if (_bounds is null) continue;
            if (lefts is not null) foreach (var l in lefts) _leftExpiry.Enqueue(key, LeftExpiry(l));
            if (rights is not null) foreach (var r in rights) _rightExpiry.Enqueue(key, RightExpiry(r));
        }
    }

    /// <summary>Applies a delta map: appends its records in order, then expires at the batch's watermark.</summary>
    private void ApplyAppendsAndExpiry(ref MessagePackReader reader)
    {
        long? expiredAt = null;
        int fields = reader.ReadMapHeader();
        for (int f = 0; f < fields; f++)
        {
            long field = reader.ReadInt64();
            switch (field)
            {
                case AppendedLefts:
                case AppendedRights:
                    int n = reader.ReadArrayHeader();
                    for (int i = 0; i < n; i++)
                    {
                        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An appended record of operator '{Node.Id}' is not a [key, record] pair.");
                        TKey key = _node.KeyFormatter.Deserialize(ref reader) ?? throw new MessagePackException($"The state of operator '{Node.Id}' holds a null key.");
                        if (field == AppendedLefts) AppendLeft(key, SidesOf(key), _node.LeftFormatter.Deserialize(ref reader));
                        else AppendRight(key, SidesOf(key), _node.RightFormatter.Deserialize(ref reader));
                    }

                    break;
                case ExpiredAt:
                    expiredAt = reader.ReadInt64();
                    break;
                default:
                    throw new MessagePackException($"The state delta of operator '{Node.Id}' has an unknown field {field}: it was written by a newer build.");
            }
        }

        if (expiredAt is { } watermark && _bounds is not null) Expire(watermark);
    }

    public void Clear()
    {
        _state.Clear();
        _leftExpiry.Clear();
        _rightExpiry.Clear();
        _appendedLefts.Clear();
        _appendedRights.Clear();
        _records = 0;
    }
}
