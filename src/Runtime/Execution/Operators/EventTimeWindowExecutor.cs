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
/// The panes live in the state backend's pane store (<see cref="IPaneStore{TKey, T}"/>), which owns their layout
/// (<see cref="PaneChanges"/>). Builds before panes kept whole hopping windows; such state is restored as legacy
/// windows, which hold the records seen before the upgrade and are combined with the panes when they fire, so an
/// upgrade neither loses nor double-counts a record.
/// </remarks>
internal sealed class EventTimeWindowExecutor<TKey, T> : OperatorExecutor<EventWindow<TKey, T>>, IStatefulExecutor, IDisposable where TKey : notnull
{
    private readonly OperatorExecutor<T> _input;
    private readonly EventTimeWindowNode<TKey, T> _node;
    private readonly IWatermark _watermark;
    private readonly long _paneMs;
    private readonly bool _tumbling;
    private readonly IPaneStore<TKey, T> _store;

    private readonly Dictionary<TKey, T> _combined = new();
    private readonly List<(TKey Key, T Value)> _firing = new();
    private readonly SortedSet<long> _toFire = new();

    public EventTimeWindowExecutor(EventTimeWindowNode<TKey, T> node, OperatorExecutor<T> input, IWatermark watermark, StateBackend? backend = null, string pipelineId = "") : base(node)
    {
        _node = node;
        _input = input;
        _watermark = watermark;
        _tumbling = node.SlideMs == node.SizeMs;
        _paneMs = Gcd(node.SizeMs, node.SlideMs);
        _store = (backend ?? StateBackend.InMemory).CreatePaneStore(new PaneStoreSpec<TKey, T>(pipelineId, node.Id, node.KeyFormatter, node.ValueFormatter, _tumbling));
    }

    /// <summary>
    /// Format 2: panes (a hopping window's snapshot is a map of pane and legacy-window updates; deltas are
    /// incremental). Format 1, before format numbers were recorded, stored whole windows (an array), which
    /// <see cref="PaneChanges"/> still reads: an entry without a format number is read by its shape.
    /// </summary>
    public int StateFormat => PaneStore<TKey, T>.Format;

    /// <summary>The layout of this operator's snapshot part: the heap's entries, or the RocksDB backend's file list.</summary>
    public int SnapshotFormat => _store.SnapshotFormat;

    public long KeyCount => _store.KeyCount;

    public long? UpdatedCount => _store.UpdatedCount;

    /// <summary>The windows' state, read between batches (by a test).</summary>
    internal IPaneStore<TKey, T> Store => _store;

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
        var combine = _node.Function;
        long late = 0;
        _store.BeginBatch();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            long time = _node.TimeSelector(record);
            TKey key = KeyCheck.NotNull(_node.KeySelector(record), Node);
            if (Floor(time, slide) + size <= previous)
            {
                late++; // the last window that holds it, and so every one, has fired
                continue;
            }

            _store.Fold(Floor(time, pane), key, record, combine);
        }

        _store.EndFolds();
        batch.AddLate(late);
        Fire(previous, _watermark.Current);
    }

    /// <summary>Emits the windows whose end is in (previous, current] and removes the panes no window needs any more.</summary>
    private void Fire(long previous, long current)
    {
        long size = _node.SizeMs, slide = _node.SlideMs;
        bool everything = current == long.MaxValue;
        _toFire.Clear();
        foreach (long p in _store.PaneStarts)
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

        if (_store.HasLegacyWindows)
        {
            foreach (long s in _store.LegacyWindowStarts)
            {
                if (!everything && s + size > current) break;
                _toFire.Add(s);
            }
        }

        foreach (long s in _toFire) EmitWindow(s);

        while (_store.TryGetFirstPane(out long p))
        {
            if (!everything && Floor(p, slide) + size > current) break; // a window holding p is still open
            _store.RemovePane(p);
        }
    }

    private void EmitWindow(long start)
    {
        long end = start + _node.SizeMs;
        _firing.Clear();
        if (_tumbling && !_store.HasLegacyWindows)
        {
            foreach (var (key, value) in _store.Pane(start)) _firing.Add((key, value));
        }
        else
        {
            _combined.Clear();
            _store.TakeLegacyWindow(start, _combined);
            for (long p = start; p < end; p += _paneMs)
            {
                foreach (var (key, value) in _store.Pane(p))
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
        if (_store.SnapshotFormat == SharedStateFileSet.Format) throw new InvalidOperationException($"Window '{Node.Id}' keeps its state in an external store: its snapshot is taken with WriteSnapshotFiles.");
        _store.WriteSnapshot(writer, 0);
    }

    public IReadOnlyList<SharedStateUpload> WriteSnapshotFiles(MessagePackWriter writer, long batchId) => _store.WriteSnapshot(writer, batchId);

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        _store.RestoreSnapshot(reader.ReadRaw().ToArray(), null, null);
    }

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, long storedVersion, SharedStateFiles files)
    {
        CheckVersion(storedVersion);
        _store.RestoreSnapshot(part, format, files);
    }

    public string? FormatProblem(long? storedFormat, string file) => SharedStateFileSet.FormatProblem(Node.Id, StateFormat, _store.SnapshotFormat == SharedStateFileSet.Format, storedFormat, file);

    public void Clear() => _store.Clear();

    public void Dispose() => _store.Dispose();

    /// <summary>The batch's changes (see <see cref="PaneChanges"/> for the formats).</summary>
    public void WriteDelta(MessagePackWriter writer, long batchId) => _store.WriteDelta(writer);

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        _store.ApplyDelta(ref reader);
    }

    private void CheckVersion(long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Window '{Node.Id}' cannot migrate state from version {storedVersion}.");
    }
}
