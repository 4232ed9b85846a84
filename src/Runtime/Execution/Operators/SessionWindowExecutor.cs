using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl.Execution;

/// <summary>
/// Event-time session windows by key. A record opens the window [time, time + gap) and merges with the key's
/// sessions it overlaps or touches. A session fires when the watermark reaches its end (last record's time
/// plus the gap); a record whose own window would already have fired is late and dropped. Sessions firing in
/// a batch are emitted ordered by end, then start, then key bytes.
/// </summary>
internal sealed class SessionWindowExecutor<TKey, T> : OperatorExecutor<EventWindow<TKey, T>>, IStatefulExecutor, IDisposable where TKey : notnull
{
    private readonly OperatorExecutor<T> _input;
    private readonly SessionWindowNode<TKey, T> _node;
    private readonly IWatermark _watermark;
    private readonly ISessionStore<TKey, T> _store;

    public SessionWindowExecutor(SessionWindowNode<TKey, T> node, OperatorExecutor<T> input, IWatermark watermark, StateBackend? backend = null, string pipelineId = "") : base(node)
    {
        _node = node;
        _input = input;
        _watermark = watermark;
        _store = (backend ?? StateBackend.InMemory).CreateSessionStore(new SessionStoreSpec<TKey, T>(pipelineId, node.Id, node.KeyFormatter, node.ValueFormatter));
    }

    /// <summary>
    /// Format 2: incremental deltas (<c>{0: changed keys}</c>). Format 1, before format numbers were recorded,
    /// wrote the whole state as each delta (an array), which <see cref="ApplyDelta"/> still reads by its shape.
    /// </summary>
    public int StateFormat => SessionStore<TKey, T>.Format;

    /// <summary>The layout of this operator's snapshot part: the heap's entries, or the RocksDB backend's file list.</summary>
    public int SnapshotFormat => _store.SnapshotFormat;

    public long KeyCount => _store.KeyCount;

    public long? UpdatedCount => _store.ChangedCount;

    public override void Execute(BatchContext batch)
    {
        long previous = _watermark.Previous, gap = _node.GapMs;
        long late = 0;
        _store.BeginBatch();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            long time = _node.TimeSelector(record);
            if (time + gap <= previous)
            {
                late++;
                continue;
            }

            TKey key = KeyCheck.NotNull(_node.KeySelector(record), Node);
            var list = _store.SessionsOf(key);
            var merged = new Session<T> { Start = time, End = time + gap, Value = record };
            bool mergedAny = false, unchanged = false;
            // Sessions are kept sorted by start; merge every one the new window overlaps or touches.
            for (int i = 0; i < list.Count; i++)
            {
                var s = list[i];
                if (s.Start <= merged.End && merged.Start <= s.End)
                {
                    merged = mergedAny
                        ? new Session<T> { Start = Math.Min(s.Start, merged.Start), End = Math.Max(s.End, merged.End), Value = s.Start <= merged.Start ? _node.Function(s.Value, merged.Value) : _node.Function(merged.Value, s.Value) }
                        : new Session<T> { Start = Math.Min(s.Start, time), End = Math.Max(s.End, time + gap), Value = _node.Function(s.Value, record) };
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
            if (!unchanged) _store.Changed(key);
            if (!mergedAny) _store.DueAt(key, merged.End);
        }

        batch.AddLate(late);
        Fire(_watermark.Current);
        _store.EndBatch();
    }

    private void Fire(long watermark)
    {
        List<(long End, long Start, TKey Key, T Value)>? fired = null;
        var requeue = new List<(TKey, long)>();
        while (_store.TryTakeDue(watermark, out var key, out var list))
        {
            for (int i = 0; i < list!.Count; i++)
            {
                var s = list[i];
                if (watermark != long.MaxValue && s.End > watermark) continue;
                (fired ??= new()).Add((s.End, s.Start, key, s.Value));
                list.RemoveAt(i);
                i--;
                _store.Changed(key);
            }

            _store.Settle(key, list, requeue);
        }

        _store.Requeue(requeue);
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
        if (_store.SnapshotFormat == SharedStateFileSet.Format) throw new InvalidOperationException($"Session window '{Node.Id}' keeps its state in an external store: its snapshot is taken with WriteSnapshotFiles.");
        _store.WriteSnapshot(writer, 0);
    }

    public IReadOnlyList<SharedStateUpload> WriteSnapshotFiles(MessagePackWriter writer, long batchId) => _store.WriteSnapshot(writer, batchId);

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        if (_store is SessionStore<TKey, T> heap) heap.RestoreSnapshot(ref reader);
        else _store.RestoreSnapshot(reader.ReadRaw().ToArray(), null, null);
    }

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, long storedVersion, SharedStateFiles files)
    {
        CheckVersion(storedVersion);
        _store.RestoreSnapshot(part, format, files);
    }

    public string? FormatProblem(long? storedFormat, string file) => SharedStateFileSet.FormatProblem(Node.Id, StateFormat, _store.SnapshotFormat == SharedStateFileSet.Format, storedFormat, file);

    public void Clear() => _store.Clear();

    public void Dispose() => _store.Dispose();

    /// <summary>The keys whose sessions the batch changed, each with all its open sessions (see <see cref="SessionStore{TKey, T}"/>).</summary>
    public void WriteDelta(MessagePackWriter writer, long batchId) => _store.WriteDelta(writer);

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        _store.ApplyDelta(ref reader);
    }

    private void CheckVersion(long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Session window '{Node.Id}' cannot migrate state from version {storedVersion}.");
    }
}
