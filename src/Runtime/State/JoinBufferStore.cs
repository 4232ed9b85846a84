using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>
/// A stream join's state: the records each key keeps from both sides, the order they expire in, what the current batch
/// appended (its delta), and the one layout of that state in snapshots and deltas. The join operator decides what
/// matches and what is late; this store decides what is kept and how it is written.
/// </summary>
/// <remarks>
/// Layout (a stream join's format 2): a snapshot is <c>[[key, [left, ...], [right, ...]], ...]</c>; a delta is
/// <c>{0: [[key, left], ...], 1: [[key, right], ...], 2: watermark}</c>, the records a batch appended in order and, with
/// expiry, the watermark its expiry ran at. Applying a delta appends the records and expires at that watermark, which
/// removes exactly what the batch removed, so a delta never rewrites the records a key keeps. Format 1 (before format
/// numbers were recorded) wrote per-key arrays as deltas too: <c>[key, lefts, rights]</c> replaced a key's records,
/// <c>[key, lefts, rights, true]</c> appended to them; <see cref="ApplyDelta"/> tells the two apart by shape.
/// </remarks>
internal sealed class JoinBufferStore<TKey, TLeft, TRight> : IJoinBuffer<TKey, TLeft, TRight> where TKey : notnull
{
    private const long AppendedLefts = JoinDelta.AppendedLefts, AppendedRights = JoinDelta.AppendedRights, ExpiredAt = JoinDelta.ExpiredAt;

    private readonly string _operatorId;
    private readonly IMessagePackFormatter<TKey> _keyFormatter;
    private readonly IMessagePackFormatter<TLeft> _leftFormatter;
    private readonly IMessagePackFormatter<TRight> _rightFormatter;
    private readonly Func<TLeft, long>? _leftExpiry;
    private readonly Func<TRight, long>? _rightExpiry;
    private readonly Dictionary<TKey, JoinSides<TLeft, TRight>> _sides = new();
    // One entry per kept record (a key's list is swept when any of its entries is due), also after a restore.
    private readonly PriorityQueue<TKey, long> _leftDue = new();
    private readonly PriorityQueue<TKey, long> _rightDue = new();
    private readonly HashSet<TKey> _swept = new();
    private readonly List<(TKey Key, TLeft Record)> _appendedLefts = new();
    private readonly List<(TKey Key, TRight Record)> _appendedRights = new();
    private long _expiredAt = long.MinValue;

    public JoinBufferStore(JoinBufferSpec<TKey, TLeft, TRight> spec)
    {
        _operatorId = spec.OperatorId;
        _keyFormatter = spec.KeyFormatter;
        _leftFormatter = spec.LeftFormatter;
        _rightFormatter = spec.RightFormatter;
        _leftExpiry = spec.LeftExpiry;
        _rightExpiry = spec.RightExpiry;
        if ((_leftExpiry is null) != (_rightExpiry is null)) throw new ArgumentException("Both sides expire, or neither does.");
    }

    /// <summary>Format 2: the heap's layout (see the remarks).</summary>
    public const int Format = 2;

    public int SnapshotFormat => Format;

    public long KeyCount => _sides.Count;

    /// <summary>Records the current batch kept, both sides.</summary>
    public long AppendedCount => _appendedLefts.Count + _appendedRights.Count;

    /// <summary>Records kept on both sides.</summary>
    public long RecordCount { get; private set; }

    private bool Expires => _leftExpiry is not null;

    /// <summary>Starts a batch: forgets what the previous batch appended.</summary>
    public void BeginBatch()
    {
        _appendedLefts.Clear();
        _appendedRights.Clear();
        _expiredAt = long.MinValue;
    }

    public JoinSides<TLeft, TRight> SidesForLeft(TKey key) => SidesOf(key);

    public JoinSides<TLeft, TRight> SidesForRight(TKey key) => SidesOf(key);

    /// <summary>The key's kept records (both sides whole), created empty when it has none.</summary>
    public JoinSides<TLeft, TRight> SidesOf(TKey key)
    {
        ref var sides = ref CollectionsMarshal.GetValueRefOrAddDefault(_sides, key, out _);
        return sides ??= new JoinSides<TLeft, TRight>();
    }

    /// <summary>Keeps a left record of this batch (part of its delta).</summary>
    public void AddLeft(TKey key, JoinSides<TLeft, TRight> sides, TLeft record)
    {
        KeepLeft(key, sides, record);
        _appendedLefts.Add((key, record));
    }

    /// <summary>Keeps a right record of this batch (part of its delta).</summary>
    public void AddRight(TKey key, JoinSides<TLeft, TRight> sides, TRight record)
    {
        KeepRight(key, sides, record);
        _appendedRights.Add((key, record));
    }

    private void KeepLeft(TKey key, JoinSides<TLeft, TRight> sides, TLeft record)
    {
        (sides.Left ??= new List<TLeft>(1)).Add(record);
        RecordCount++;
        if (_leftExpiry is not null) _leftDue.Enqueue(key, _leftExpiry(record));
    }

    private void KeepRight(TKey key, JoinSides<TLeft, TRight> sides, TRight record)
    {
        (sides.Right ??= new List<TRight>(1)).Add(record);
        RecordCount++;
        if (_rightExpiry is not null) _rightDue.Enqueue(key, _rightExpiry(record));
    }

    /// <summary>
    /// Removes every record whose expiry is below <paramref name="watermark"/> (no record that is not late can still
    /// match it) and remembers the watermark for the batch's delta.
    /// </summary>
    public void ExpireBefore(long watermark)
    {
        if (!Expires) throw new InvalidOperationException($"The join buffer of operator '{_operatorId}' keeps its records forever.");
        _expiredAt = watermark;
        Expire(watermark);
    }

    private void Expire(long watermark)
    {
        // A key has one queue entry per record; its list is swept once per call.
        _swept.Clear();
        while (_leftDue.TryPeek(out var key, out long due) && due < watermark)
        {
            _leftDue.Dequeue();
            if (!_swept.Add(key) || !_sides.TryGetValue(key, out var sides) || sides.Left is null) continue;
            RecordCount -= sides.Left.RemoveAll(l => _leftExpiry!(l) < watermark);
            if (sides.IsEmpty) _sides.Remove(key);
        }

        _swept.Clear();
        while (_rightDue.TryPeek(out var key, out long due) && due < watermark)
        {
            _rightDue.Dequeue();
            if (!_swept.Add(key) || !_sides.TryGetValue(key, out var sides) || sides.Right is null) continue;
            RecordCount -= sides.Right.RemoveAll(r => _rightExpiry!(r) < watermark);
            if (sides.IsEmpty) _sides.Remove(key);
        }
    }

    public IEnumerable<(TKey Key, IReadOnlyList<TLeft> Left, IReadOnlyList<TRight> Right)> Entries()
    {
        foreach (var (key, sides) in _sides)
        {
            if (!sides.IsEmpty) yield return (key, sides.Left?.ToArray() ?? [], sides.Right?.ToArray() ?? []);
        }
    }

    /// <summary>Nothing to do: the batch's changes are in the dictionaries already.</summary>
    public void EndBatch()
    {
    }

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId)
    {
        WriteSnapshot(writer);
        return Array.Empty<SharedStateUpload>();
    }

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files)
    {
        if (format == SharedStateFileSet.Format)
            throw new InvalidOperationException($"The snapshot of stream join '{_operatorId}' lists the files of the RocksDB state backend; this run keeps state in memory.");
        var reader = new MessagePackReader(part.Span);
        RestoreSnapshot(ref reader);
    }

    public void Dispose()
    {
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_sides.Count);
        foreach (var (key, sides) in _sides)
        {
            writer.WriteArrayHeader(3);
            _keyFormatter.Serialize(writer, key);
            var lefts = sides.Left;
            writer.WriteArrayHeader(lefts?.Count ?? 0);
            if (lefts is not null) foreach (var l in lefts) _leftFormatter.Serialize(writer, l);
            var rights = sides.Right;
            writer.WriteArrayHeader(rights?.Count ?? 0);
            if (rights is not null) foreach (var r in rights) _rightFormatter.Serialize(writer, r);
        }
    }

    public void WriteDelta(MessagePackWriter writer)
    {
        writer.WriteMapHeader(Expires ? 3 : 2);
        WriteAppended(writer, AppendedLefts, _appendedLefts, _leftFormatter);
        WriteAppended(writer, AppendedRights, _appendedRights, _rightFormatter);
        if (!Expires) return;
        writer.Write(ExpiredAt);
        writer.Write(_expiredAt);
    }

    private void WriteAppended<TRecord>(MessagePackWriter writer, long field, List<(TKey Key, TRecord Record)> appended, IMessagePackFormatter<TRecord> formatter)
    {
        writer.Write(field);
        writer.WriteArrayHeader(appended.Count);
        foreach (var (key, record) in appended)
        {
            writer.WriteArrayHeader(2);
            _keyFormatter.Serialize(writer, key);
            formatter.Serialize(writer, record);
        }
    }

    public void RestoreSnapshot(ref MessagePackReader reader)
    {
        Clear();
        ApplyDelta(ref reader);
    }

    /// <summary>Applies a delta of format 2 (a map) or 1 (per-key arrays); a snapshot is read as a format 1 delta over an empty store.</summary>
    public void ApplyDelta(ref MessagePackReader reader)
    {
        if (reader.NextType == MessagePackType.Map)
        {
            ApplyAppendsAndExpiry(ref reader);
            return;
        }

        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            int fields = reader.ReadArrayHeader();
            if (fields is not (3 or 4)) throw new MessagePackException($"A join entry of operator '{_operatorId}' is not a [key, left records, right records(, appended)] array.");
            TKey key = ReadKey(ref reader);
            int nl = reader.ReadArrayHeader();
            var lefts = nl == 0 ? null : new List<TLeft>(nl);
            for (int j = 0; j < nl; j++) lefts!.Add(_leftFormatter.Deserialize(ref reader));
            int nr = reader.ReadArrayHeader();
            var rights = nr == 0 ? null : new List<TRight>(nr);
            for (int j = 0; j < nr; j++) rights!.Add(_rightFormatter.Deserialize(ref reader));
            if (fields == 4)
            {
                if (!reader.ReadBoolean()) throw new MessagePackException($"A join entry of operator '{_operatorId}' has four fields but is not an append.");
                var sides = SidesOf(key);
                if (lefts is not null) foreach (var l in lefts) KeepLeft(key, sides, l);
                if (rights is not null) foreach (var r in rights) KeepRight(key, sides, r);
                continue;
            }

            if (_sides.TryGetValue(key, out var old)) RecordCount -= (old.Left?.Count ?? 0) + (old.Right?.Count ?? 0);
            if (nl + nr == 0)
            {
                _sides.Remove(key);
                continue;
            }

            _sides[key] = new JoinSides<TLeft, TRight> { Left = lefts, Right = rights };
            RecordCount += nl + nr;
            if (lefts is not null && _leftExpiry is not null) foreach (var l in lefts) _leftDue.Enqueue(key, _leftExpiry(l));
            if (rights is not null && _rightExpiry is not null) foreach (var r in rights) _rightDue.Enqueue(key, _rightExpiry(r));
        }
    }

    private void ApplyAppendsAndExpiry(ref MessagePackReader reader)
    {
        long? expiredAt = JoinDelta.Read(ref reader, _operatorId, (left, key, record) =>
        {
            var k = new MessagePackReader(key);
            TKey joinKey = ReadKey(ref k);
            var r = new MessagePackReader(record);
            if (left) KeepLeft(joinKey, SidesOf(joinKey), _leftFormatter.Deserialize(ref r));
            else KeepRight(joinKey, SidesOf(joinKey), _rightFormatter.Deserialize(ref r));
        });
        if (expiredAt is { } watermark && Expires) Expire(watermark);
    }

    private TKey ReadKey(ref MessagePackReader reader) =>
        _keyFormatter.Deserialize(ref reader) ?? throw new MessagePackException($"The state of operator '{_operatorId}' holds a null key.");

    public void Clear()
    {
        _sides.Clear();
        _leftDue.Clear();
        _rightDue.Clear();
        _appendedLefts.Clear();
        _appendedRights.Clear();
        _expiredAt = long.MinValue;
        RecordCount = 0;
    }
}

/// <summary>
/// The one reader of a stream join's delta of format 2, <c>{0: [[key, left], ...], 1: [[key, right], ...], 2: watermark}</c>,
/// whatever buffer applies it (the heap's, RocksDB's); the field numbers are its.
/// </summary>
internal static class JoinDelta
{
    public const long AppendedLefts = 0, AppendedRights = 1, ExpiredAt = 2;

    /// <summary>A record a delta appended: its side, its key's and its own MessagePack bytes.</summary>
    public delegate void Appended(bool left, ReadOnlySpan<byte> key, ReadOnlySpan<byte> record);

    /// <summary>Reads the delta, passing each appended record in order; returns the watermark its expiry ran at, if written.</summary>
    public static long? Read(ref MessagePackReader reader, string operatorId, Appended appended)
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
                        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"An appended record of operator '{operatorId}' is not a [key, record] pair.");
                        var key = reader.ReadRaw();
                        var record = reader.ReadRaw();
                        appended(field == AppendedLefts, key, record);
                    }

                    break;
                case ExpiredAt:
                    expiredAt = reader.ReadInt64();
                    break;
                default:
                    throw new MessagePackException($"The state delta of operator '{operatorId}' has an unknown field {field}: it was written by a newer build.");
            }
        }

        return expiredAt;
    }
}

/// <summary>Reads a stream join's snapshot (<see cref="JoinBufferStore{TKey,TLeft,TRight}"/>) for <c>dump-state</c>: one line per key.</summary>
internal static class JoinBufferLayout
{
    public static void Dump(ref MessagePackReader r, JsonLines lines)
    {
        int count = r.ReadArrayHeader();
        for (int i = 0; i < count && !lines.Full; i++)
        {
            if (r.ReadArrayHeader() != 3) throw new MessagePackException($"Entry {i} of a stream join's state is not a [key, left records, right records] array.");
            var json = lines.Begin();
            json.WritePropertyName("key");
            Json.Write(ref r, json, null);
            // Without field names: the manifest records one state schema per operator, and a join keeps two record types.
            json.WritePropertyName("left");
            Json.Write(ref r, json, null);
            json.WritePropertyName("right");
            Json.Write(ref r, json, null);
            lines.End();
        }
    }
}
