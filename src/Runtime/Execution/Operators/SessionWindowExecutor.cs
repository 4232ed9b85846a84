using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.Execution;

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
