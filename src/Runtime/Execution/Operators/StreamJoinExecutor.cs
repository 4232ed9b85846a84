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
/// Inner join of two streams across batches. In each batch, every left record (in order) is matched with the
/// right records kept from earlier batches, then every right record with all kept left records (including
/// this batch's), so each pair is produced exactly once whichever side arrives first. With time bounds a pair
/// matches only when <c>leftTime + lower ≤ rightTime ≤ leftEnd + upper</c>; a record older than the previous
/// watermark is late and dropped, and a kept record is removed once the watermark passes the last time a
/// match could arrive (right: <c>rightTime − lower</c>; left: <c>leftEnd + upper</c>). Without bounds every
/// record is kept. What is kept, and how it is written, is the <see cref="JoinBufferStore{TKey,TLeft,TRight}"/>'s.
/// </summary>
internal sealed class StreamJoinExecutor<TKey, TLeft, TRight, TOut> : OperatorExecutor<TOut>, IStatefulExecutor, IJoinStateView<TKey, TLeft, TRight>, IDisposable where TKey : notnull
{
    private readonly OperatorExecutor<TLeft> _left;
    private readonly OperatorExecutor<TRight> _right;
    private readonly StreamJoinNode<TKey, TLeft, TRight, TOut> _node;
    private readonly IWatermark? _watermark;
    private readonly JoinTimeBounds<TLeft, TRight>? _bounds;
    private readonly IJoinBuffer<TKey, TLeft, TRight> _store;

    public StreamJoinExecutor(
        StreamJoinNode<TKey, TLeft, TRight, TOut> node,
        OperatorExecutor<TLeft> left,
        OperatorExecutor<TRight> right,
        IWatermark? watermark,
        StateBackend? backend = null,
        string pipelineId = "")
        : base(node)
    {
        _node = node;
        _left = left;
        _right = right;
        _watermark = watermark;
        _bounds = node.Bounds;
        _store = (backend ?? StateBackend.InMemory).CreateJoinBuffer(new JoinBufferSpec<TKey, TLeft, TRight>(
            pipelineId, node.Id, node.KeyFormatter, node.LeftFormatter, node.RightFormatter,
            _bounds is null ? null : LeftExpiry,
            _bounds is null ? null : RightExpiry));
    }

    /// <summary>
    /// Format 2: appended records and the expiry watermark (a map). Format 1, before format numbers were
    /// recorded, stored per-key arrays of records, which the store still reads by their shape.
    /// </summary>
    public int StateFormat => JoinBufferStore<TKey, TLeft, TRight>.Format;

    /// <summary>The layout of this join's snapshot part: the heap's entries, or the RocksDB backend's file list.</summary>
    public int SnapshotFormat => _store.SnapshotFormat;

    public long KeyCount => _store.KeyCount;

    public long? UpdatedCount => _store.AppendedCount;

    // The last time a record of the other side can match this one: after it, the record is not kept.
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
        _store.BeginBatch();
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
            var sides = _store.SidesForLeft(key);
            if (sides.Right is { } rights) foreach (var r in rights) Emit(l, r);
            _store.AddLeft(key, sides, l);
        }

        foreach (var r in CollectionsMarshal.AsSpan(_right.Output))
        {
            if (_bounds is not null && _bounds.RightTime(r) < previous)
            {
                late++;
                continue;
            }

            TKey key = KeyCheck.NotNull(_node.RightKeySelector(r), Node);
            var sides = _store.SidesForRight(key);
            if (sides.Left is { } lefts) foreach (var l in lefts) Emit(l, r);
            _store.AddRight(key, sides, r);
        }

        batch.AddLate(late);
        if (_bounds is not null) _store.ExpireBefore(_watermark!.Current);
        _store.EndBatch();
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        if (_store.SnapshotFormat == SharedStateFileSet.Format) throw new InvalidOperationException($"Stream join '{Node.Id}' keeps its state in an external store: its snapshot is taken with WriteSnapshotFiles.");
        _store.WriteSnapshot(writer, 0);
    }

    public IReadOnlyList<SharedStateUpload> WriteSnapshotFiles(MessagePackWriter writer, long batchId) => _store.WriteSnapshot(writer, batchId);

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, long storedVersion, SharedStateFiles files)
    {
        CheckVersion(storedVersion);
        _store.RestoreSnapshot(part, format, files);
    }

    public string? FormatProblem(long? storedFormat, string file) => SharedStateFileSet.FormatProblem(Node.Id, StateFormat, _store.SnapshotFormat == SharedStateFileSet.Format, storedFormat, file);

    public void WriteDelta(MessagePackWriter writer, long batchId) => _store.WriteDelta(writer);

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        if (_store is JoinBufferStore<TKey, TLeft, TRight> heap) heap.RestoreSnapshot(ref reader);
        else _store.RestoreSnapshot(reader.ReadRaw().ToArray(), null, null);
    }

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        CheckVersion(storedVersion);
        _store.ApplyDelta(ref reader);
    }

    private void CheckVersion(long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Stream join '{Node.Id}' cannot migrate state from version {storedVersion}.");
    }

    public void Clear() => _store.Clear();

    public IEnumerable<(TKey Key, IReadOnlyList<TLeft> Left, IReadOnlyList<TRight> Right)> Entries() => _store.Entries();

    public void Dispose() => _store.Dispose();
}
