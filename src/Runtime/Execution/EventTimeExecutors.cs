using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
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

/// <summary>
/// Event-time tumbling or hopping windows by key. A record is added to each of its windows that has not fired;
/// a record all of whose windows fired is late and dropped (counted in the batch's progress). A window fires
/// when the watermark reaches its end: every key's result is emitted in this batch, ordered by window start
/// and then by the key's serialized bytes, and the window's state is removed.
/// </summary>
internal sealed class EventTimeWindowExecutor<TKey, T> : OperatorExecutor<EventWindow<TKey, T>>, IStatefulExecutor where TKey : notnull
{
    private readonly OperatorExecutor<T> _input;
    private readonly EventTimeWindowNode<TKey, T> _node;
    private readonly IWatermark _watermark;
    private readonly SortedDictionary<long, Dictionary<TKey, T>> _windows = new();
    // What this batch changed, for its delta: the keys updated per window, and the windows that fired.
    private readonly Dictionary<long, HashSet<TKey>> _updated = new();
    private readonly List<long> _fired = new();

    public EventTimeWindowExecutor(EventTimeWindowNode<TKey, T> node, OperatorExecutor<T> input, IWatermark watermark) : base(node)
    {
        _node = node;
        _input = input;
        _watermark = watermark;
    }

    public long KeyCount => _windows.Values.Sum(w => (long)w.Count);

    /// <summary>The start of the last window that contains <paramref name="time"/> (windows are aligned to the epoch).</summary>
    private long LastStart(long time)
    {
        long slide = _node.SlideMs;
        long r = time % slide;
        return time - (r < 0 ? r + slide : r);
    }

    public override void Execute(BatchContext batch)
    {
        long previous = _watermark.Previous;
        long size = _node.SizeMs, slide = _node.SlideMs;
        long cachedStart = long.MinValue;
        Dictionary<TKey, T>? cached = null;
        HashSet<TKey>? cachedUpdated = null;
        long late = 0;
        _updated.Clear();
        _fired.Clear();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            long time = _node.TimeSelector(record);
            TKey key = KeyCheck.NotNull(_node.KeySelector(record), Node);
            bool added = false;
            for (long start = LastStart(time); start > time - size; start -= slide)
            {
                if (start + size <= previous) break; // this window and every earlier one have fired
                Dictionary<TKey, T> window;
                HashSet<TKey> updated;
                if (start == cachedStart)
                {
                    window = cached!;
                    updated = cachedUpdated!;
                }
                else
                {
                    if (!_windows.TryGetValue(start, out window!)) _windows[start] = window = new Dictionary<TKey, T>();
                    if (!_updated.TryGetValue(start, out updated!)) _updated[start] = updated = new HashSet<TKey>();
                    if (slide == size)
                    {
                        cachedStart = start;
                        cached = window;
                        cachedUpdated = updated;
                    }
                }

                ref T? slot = ref CollectionsMarshal.GetValueRefOrAddDefault(window, key, out bool exists);
                slot = exists ? _node.Function(slot!, record) : record;
                updated.Add(key);
                added = true;
            }

            if (!added) late++;
        }

        batch.AddLate(late);
        long current = _watermark.Current;
        while (_windows.Count > 0)
        {
            var (start, window) = _windows.First();
            if (current != long.MaxValue && start + size > current) break;
            _windows.Remove(start);
            _updated.Remove(start);
            _fired.Add(start);
            var results = KeyOrder.Sorted(window.Select(p => (p.Key, p.Value)).ToList(), _node.KeyFormatter);
            foreach (var (key, value) in results) Output.Add(new EventWindow<TKey, T>(key, value, start, start + size));
        }
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_windows.Count);
        foreach (var (start, window) in _windows)
        {
            writer.WriteArrayHeader(2);
            writer.Write(start);
            writer.WriteArrayHeader(window.Count);
            foreach (var (key, value) in window)
            {
                writer.WriteArrayHeader(2);
                _node.KeyFormatter.Serialize(writer, key);
                _node.ValueFormatter.Serialize(writer, value);
            }
        }
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Window '{Node.Id}' cannot migrate state from version {storedVersion}.");
        _windows.Clear();
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A window of operator '{Node.Id}' is not a [start, entries] pair.");
            long start = reader.ReadInt64();
            int entries = reader.ReadArrayHeader();
            var window = new Dictionary<TKey, T>(entries);
            for (int e = 0; e < entries; e++)
            {
                if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An entry of window {start} of operator '{Node.Id}' is not a [key, value] pair.");
                TKey key = _node.KeyFormatter.Deserialize(ref reader);
                if (key is null || !window.TryAdd(key, _node.ValueFormatter.Deserialize(ref reader)))
                    throw new MessagePackException($"Window {start} of operator '{Node.Id}' holds a null or repeated key.");
            }

            if (!_windows.TryAdd(start, window)) throw new MessagePackException($"Operator '{Node.Id}' holds window {start} twice.");
        }
    }

    public void Clear()
    {
        _windows.Clear();
        _updated.Clear();
        _fired.Clear();
    }

    /// <summary>
    /// The batch's changes: <c>{0: [[start, [[key, value], ...]], ...], 1: [fired start, ...]}</c>, the entries it
    /// updated in windows still open and the windows it fired. (Builds before this one wrote the whole state,
    /// an array, which <see cref="ApplyDelta"/> still reads.)
    /// </summary>
    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        writer.WriteMapHeader(2);
        writer.Write(0L);
        writer.WriteArrayHeader(_updated.Count);
        foreach (var (start, keys) in _updated)
        {
            var window = _windows[start];
            writer.WriteArrayHeader(2);
            writer.Write(start);
            writer.WriteArrayHeader(keys.Count);
            foreach (var key in keys)
            {
                writer.WriteArrayHeader(2);
                _node.KeyFormatter.Serialize(writer, key);
                _node.ValueFormatter.Serialize(writer, window[key]);
            }
        }

        writer.Write(1L);
        writer.WriteArrayHeader(_fired.Count);
        foreach (long start in _fired) writer.Write(start);
    }

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        if (reader.NextType != MessagePackType.Map)
        {
            RestoreSnapshot(ref reader, storedVersion);
            return;
        }

        if (storedVersion != _node.Version) throw new InvalidOperationException($"Window '{Node.Id}' cannot migrate state from version {storedVersion}.");
        if (reader.ReadMapHeader() != 2 || reader.ReadInt64() != 0) throw new MessagePackException($"The delta of window '{Node.Id}' is not a {{0: updates, 1: fired}} map.");
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An update of window operator '{Node.Id}' is not a [start, entries] pair.");
            long start = reader.ReadInt64();
            if (!_windows.TryGetValue(start, out var window)) _windows[start] = window = new Dictionary<TKey, T>();
            int entries = reader.ReadArrayHeader();
            for (int e = 0; e < entries; e++)
            {
                if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An entry of window {start} of operator '{Node.Id}' is not a [key, value] pair.");
                TKey key = _node.KeyFormatter.Deserialize(ref reader);
                if (key is null) throw new MessagePackException($"Window {start} of operator '{Node.Id}' holds a null key.");
                window[key] = _node.ValueFormatter.Deserialize(ref reader);
            }
        }

        if (reader.ReadInt64() != 1) throw new MessagePackException($"The delta of window '{Node.Id}' has no list of fired windows.");
        int fired = reader.ReadArrayHeader();
        for (int i = 0; i < fired; i++) _windows.Remove(reader.ReadInt64());
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
            bool mergedAny = false;
            // Sessions are kept sorted by start; merge every one the new window overlaps or touches.
            for (int i = 0; i < list.Count; i++)
            {
                var s = list[i];
                if (s.Start <= merged.End && merged.Start <= s.End)
                {
                    merged = mergedAny
                        ? new Session { Start = Math.Min(s.Start, merged.Start), End = Math.Max(s.End, merged.End), Value = s.Start <= merged.Start ? _node.Function(s.Value, merged.Value) : _node.Function(merged.Value, s.Value) }
                        : new Session { Start = Math.Min(s.Start, time), End = Math.Max(s.End, time + gap), Value = _node.Function(s.Value, record) };
                    mergedAny = true;
                    list.RemoveAt(i);
                    i--;
                }
            }

            int at = 0;
            while (at < list.Count && list[at].Start < merged.Start) at++;
            list.Insert(at, merged);
            _changed.Add(key);
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
/// record is kept. The delta of a batch holds the keys it touched: the records appended to a key's lists, or
/// the whole lists when expiry removed some.
/// </summary>
internal sealed class StreamJoinExecutor<TKey, TLeft, TRight, TOut> : OperatorExecutor<TOut>, IStatefulExecutor where TKey : notnull
{
    private readonly OperatorExecutor<TLeft> _left;
    private readonly OperatorExecutor<TRight> _right;
    private readonly StreamJoinNode<TKey, TLeft, TRight, TOut> _node;
    private readonly IWatermark? _watermark;
    private readonly JoinTimeBounds<TLeft, TRight>? _bounds;
    private readonly Dictionary<TKey, Sides> _state = new();
    private readonly PriorityQueue<TKey, long> _leftExpiry = new();
    private readonly PriorityQueue<TKey, long> _rightExpiry = new();
    private readonly HashSet<TKey> _touched = new();
    // For touched keys whose lists only grew in this batch: their lengths before it, so the delta holds only
    // the appended records (an unbounded join would otherwise rewrite a hot key's whole list every batch).
    private readonly Dictionary<TKey, (int Left, int Right)> _appendedFrom = new();
    private readonly HashSet<TKey> _swept = new();
    private long _records;

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
        _touched.Clear();
        _appendedFrom.Clear();
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
            ref var sides = ref CollectionsMarshal.GetValueRefOrAddDefault(_state, key, out _);
            sides ??= new Sides();
            if (sides.Right is { } rights) foreach (var r in rights) Emit(l, r);
            Touch(key, sides);
            (sides.Left ??= new List<TLeft>(1)).Add(l);
            _records++;
            if (_bounds is not null) _leftExpiry.Enqueue(key, LeftExpiry(l));
        }

        foreach (var r in CollectionsMarshal.AsSpan(_right.Output))
        {
            if (_bounds is not null && _bounds.RightTime(r) < previous)
            {
                late++;
                continue;
            }

            TKey key = KeyCheck.NotNull(_node.RightKeySelector(r), Node);
            ref var sides = ref CollectionsMarshal.GetValueRefOrAddDefault(_state, key, out _);
            sides ??= new Sides();
            if (sides.Left is { } lefts) foreach (var l in lefts) Emit(l, r);
            Touch(key, sides);
            (sides.Right ??= new List<TRight>(1)).Add(r);
            _records++;
            if (_bounds is not null) _rightExpiry.Enqueue(key, RightExpiry(r));
        }

        batch.AddLate(late);
        if (_bounds is not null) Expire(_watermark!.Current);
    }

    /// <summary>Marks <paramref name="key"/> as changed by appends, remembering its list lengths before this batch.</summary>
    private void Touch(TKey key, Sides sides)
    {
        if (_touched.Add(key)) _appendedFrom[key] = (sides.Left?.Count ?? 0, sides.Right?.Count ?? 0);
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
            _touched.Add(key);
            _appendedFrom.Remove(key); // records left from the middle: the delta rewrites the key
            if (sides.IsEmpty) _state.Remove(key);
        }

        _swept.Clear();
        while (_rightExpiry.TryPeek(out var key, out long expiry) && expiry < watermark)
        {
            _rightExpiry.Dequeue();
            if (!_swept.Add(key) || !_state.TryGetValue(key, out var sides) || sides.Right is null) continue;
            _records -= sides.Right.RemoveAll(r => RightExpiry(r) < watermark);
            _touched.Add(key);
            _appendedFrom.Remove(key);
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
    /// The keys this batch touched. A key that only grew is <c>[key, appended lefts, appended rights, true]</c>;
    /// any other is <c>[key, lefts, rights]</c> with its full lists (both empty: the key is gone), as in a snapshot.
    /// </summary>
    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        writer.WriteArrayHeader(_touched.Count);
        foreach (var key in _touched)
        {
            var sides = _state.TryGetValue(key, out var s) ? s : null;
            if (sides is null || !_appendedFrom.TryGetValue(key, out var from))
            {
                WriteEntry(writer, key, sides);
                continue;
            }

            writer.WriteArrayHeader(4);
            _node.KeyFormatter.Serialize(writer, key);
            int nl = (sides.Left?.Count ?? 0) - from.Left, nr = (sides.Right?.Count ?? 0) - from.Right;
            writer.WriteArrayHeader(nl);
            for (int i = from.Left; i < from.Left + nl; i++) _node.LeftFormatter.Serialize(writer, sides.Left![i]);
            writer.WriteArrayHeader(nr);
            for (int i = from.Right; i < from.Right + nr; i++) _node.RightFormatter.Serialize(writer, sides.Right![i]);
            writer.Write(true);
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
                ref var sides = ref CollectionsMarshal.GetValueRefOrAddDefault(_state, key, out _);
                sides ??= new Sides();
                if (lefts is not null) (sides.Left ??= new List<TLeft>(nl)).AddRange(lefts);
                if (rights is not null) (sides.Right ??= new List<TRight>(nr)).AddRange(rights);
                _records += nl + nr;
                if (_bounds is null) continue;
                if (lefts is not null) _leftExpiry.Enqueue(key, lefts.Min(LeftExpiry));
                if (rights is not null) _rightExpiry.Enqueue(key, rights.Min(RightExpiry));
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
            if (lefts is not null) _leftExpiry.Enqueue(key, lefts.Min(LeftExpiry));
            if (rights is not null) _rightExpiry.Enqueue(key, rights.Min(RightExpiry));
        }
    }

    public void Clear()
    {
        _state.Clear();
        _leftExpiry.Clear();
        _rightExpiry.Clear();
        _touched.Clear();
        _appendedFrom.Clear();
        _records = 0;
    }
}
