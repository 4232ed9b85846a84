using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.Execution;

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
