using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// A stream join's kept records in a RocksDB database (see <see cref="RocksDbStateBackend"/>): one entry per record, so a
/// batch reads only the keys it meets and writes only the records it keeps or expires.
/// </summary>
/// <remarks>
/// <para>
/// Layout in the database (see <see cref="RocksDbJoinLayout"/>): the default column family maps
/// <c>[key bytes][side, 1 byte: 0 left, 1 right][sequence, 8 bytes big-endian]</c> to the record's MessagePack bytes. A
/// key's MessagePack bytes are self-delimiting, so no key's bytes are a prefix of another's and one range scan reads
/// exactly one key's records of one side, in the order they were kept (the sequence rises with every record kept). A
/// join with time bounds also has the column family <c>due</c>, one empty entry per record under
/// <c>[side][expiry, 8 bytes big-endian with the sign bit flipped][key bytes][sequence]</c>, so that expiry reads only
/// the records that are due, oldest first; and <c>meta</c> keeps the next sequence number.
/// </para>
/// <para>
/// A batch loads each key it meets once (both sides, into its cache) and writes what it kept as one write batch at its
/// end, then removes what expired. Deltas are the heap buffer's (format 2), so recovery applies them the same way;
/// snapshots list the database's files (format <see cref="SharedStateFileSet.Format"/>).
/// </para>
/// </remarks>
internal sealed class RocksDbJoinBuffer<TKey, TLeft, TRight> : IJoinBuffer<TKey, TLeft, TRight> where TKey : notnull
{
    internal const string DueFamily = "due", MetaFamily = "meta";
    internal const byte LeftSide = 0, RightSide = 1;
    private const long AppendedLefts = JoinDelta.AppendedLefts, AppendedRights = JoinDelta.AppendedRights, ExpiredAt = JoinDelta.ExpiredAt;
    private static readonly byte[] NextSequenceKey = "next-sequence"u8.ToArray();

    private readonly JoinBufferSpec<TKey, TLeft, TRight> _spec;
    private readonly RocksDbOperatorDatabase _database;
    private readonly MessagePackWriter _scratch = new(256);

    // The read options of the range reads, one at a time: each sets its upper bound (the library copies it and frees the
    // previous copy), so that a read ends at its range instead of reading on past the tombstones of removed records.
    private readonly ReadOptions _range = new();
    private long _keyCount;
    private long _nextSequence;

    // The keys the current batch met; what it kept, in order; the watermark its expiry ran at.
    private readonly Dictionary<TKey, Cached> _batch = new();
    private Cached? _last;
    private readonly List<Appended> _appended = new();
    private long _expiredAt = long.MinValue;

    // Every record due below this was removed: expiry seeks here instead of at the index's start, where the tombstones
    // of everything removed before lie until a compaction (read past, they would make each batch's expiry cost grow
    // with all the records ever expired). Lowered by a record kept with an earlier expiry.
    private long _expiryFloor = long.MinValue;

    public RocksDbJoinBuffer(RocksDbStateBackend backend, JoinBufferSpec<TKey, TLeft, TRight> spec)
    {
        if ((spec.LeftExpiry is null) != (spec.RightExpiry is null)) throw new ArgumentException("Both sides expire, or neither does.");
        _spec = spec;
        _database = spec.Expires
            ? new RocksDbOperatorDatabase(backend, spec.PipelineId, spec.OperatorId, MetaFamily, DueFamily)
            : new RocksDbOperatorDatabase(backend, spec.PipelineId, spec.OperatorId, MetaFamily);
    }

    private sealed class Cached
    {
        public required byte[] KeyBytes;
        public required JoinSides<TLeft, TRight> Sides;

        // Which sides were read into Sides (until then a side's list holds only this batch's records); whether the key
        // kept records before this batch (null: not known yet); whether this batch kept one.
        public bool LeftLoaded;
        public bool RightLoaded;
        public bool? Stored;
        public bool Kept;
    }

    private readonly record struct Appended(byte[] KeyBytes, byte Side, byte[] Record, long Due);

    public long KeyCount => _keyCount;

    public long AppendedCount => _appended.Count;

    public int SnapshotFormat => SharedStateFileSet.Format;

    public void BeginBatch()
    {
        _batch.Clear();
        _last = null;
        _appended.Clear();
        _expiredAt = long.MinValue;
    }

    public JoinSides<TLeft, TRight> SidesForLeft(TKey key)
    {
        var cached = Lookup(key);
        if (!cached.RightLoaded) LoadSide(cached, RightSide);
        return cached.Sides;
    }

    public JoinSides<TLeft, TRight> SidesForRight(TKey key)
    {
        var cached = Lookup(key);
        if (!cached.LeftLoaded) LoadSide(cached, LeftSide);
        return cached.Sides;
    }

    private Cached Lookup(TKey key)
    {
        if (!_batch.TryGetValue(key, out var cached))
        {
            cached = new Cached { KeyBytes = KeyBytes(key), Sides = new JoinSides<TLeft, TRight>() };
            _batch.Add(key, cached);
        }

        _last = cached;
        return cached;
    }

    public void AddLeft(TKey key, JoinSides<TLeft, TRight> sides, TLeft record)
    {
        var cached = CachedOf(key, sides);
        cached.Kept = true;
        (sides.Left ??= new List<TLeft>(1)).Add(record);
        _scratch.Clear();
        _spec.LeftFormatter.Serialize(_scratch, record);
        _appended.Add(new Appended(cached.KeyBytes, LeftSide, _scratch.ToArray(), _spec.LeftExpiry?.Invoke(record) ?? 0));
    }

    public void AddRight(TKey key, JoinSides<TLeft, TRight> sides, TRight record)
    {
        var cached = CachedOf(key, sides);
        cached.Kept = true;
        (sides.Right ??= new List<TRight>(1)).Add(record);
        _scratch.Clear();
        _spec.RightFormatter.Serialize(_scratch, record);
        _appended.Add(new Appended(cached.KeyBytes, RightSide, _scratch.ToArray(), _spec.RightExpiry?.Invoke(record) ?? 0));
    }

    // The join asks for a key's sides and keeps a record of it next: the entry it just met, found without hashing again.
    private Cached CachedOf(TKey key, JoinSides<TLeft, TRight> sides) =>
        _last is { } last && ReferenceEquals(last.Sides, sides) ? last : Lookup(key);

    public void ExpireBefore(long watermark)
    {
        if (!_spec.Expires) throw new InvalidOperationException($"The join buffer of operator '{_spec.OperatorId}' keeps its records forever.");
        _expiredAt = watermark;
    }

    public void EndBatch()
    {
        if (_appended.Count > 0)
        {
            // Whether each key that kept a record had any before: known where a side read found one, asked otherwise
            // (before this batch's records are written).
            foreach (var cached in _batch.Values)
            {
                if (cached.Kept && cached.Stored is null) cached.Stored = !(cached.LeftLoaded && cached.RightLoaded) && HasRecords(cached.KeyBytes);
            }

            var due = _spec.Expires ? _database.Family(DueFamily) : null;
            using var batch = new WriteBatch();
            foreach (var a in _appended)
            {
                if (due is not null && a.Due < _expiryFloor) _expiryFloor = a.Due;
                long sequence = _nextSequence++;
                batch.Put(RecordKey(a.KeyBytes, a.Side, sequence), a.Record);
                if (due is not null) batch.Put(DueKey(a.Side, a.Due, a.KeyBytes, sequence), Array.Empty<byte>(), due);
            }

            var next = new byte[8];
            BinaryPrimitives.WriteInt64BigEndian(next, _nextSequence);
            batch.Put(NextSequenceKey, next, _database.Family(MetaFamily));
            _database.Write(batch);

            foreach (var cached in _batch.Values)
            {
                if (!cached.Kept || cached.Stored == true) continue;
                cached.Stored = true;
                _keyCount++;
            }
        }

        if (_spec.Expires && _expiredAt != long.MinValue) Expire(_expiredAt);
    }

    /// <summary>Removes every record whose expiry is below <paramref name="watermark"/>, and counts the keys left with none.</summary>
    private void Expire(long watermark)
    {
        var db = _database.Db;
        var due = _database.Family(DueFamily);
        var emptied = new HashSet<byte[]>(KeyPartComparer.Instance);
        using (var batch = new WriteBatch())
        {
            foreach (byte side in new[] { LeftSide, RightSide })
            {
                var upper = new byte[9];
                upper[0] = side;
                BinaryPrimitives.WriteUInt64BigEndian(upper.AsSpan(1), Flip(watermark));
                var from = new byte[9];
                from[0] = side;
                BinaryPrimitives.WriteUInt64BigEndian(from.AsSpan(1), Flip(_expiryFloor));
                bool any = false;
                using (var it = db.NewIterator(due, _range.SetIterateUpperBound(upper)))
                {
                    for (it.Seek(from); it.Valid(); it.Next())
                    {
                        var dueKey = it.GetKeySpan();
                        var keyBytes = dueKey[9..^8];
                        long sequence = BinaryPrimitives.ReadInt64BigEndian(dueKey[^8..]);
                        var recordKey = new byte[keyBytes.Length + 9];
                        keyBytes.CopyTo(recordKey);
                        recordKey[keyBytes.Length] = side;
                        BinaryPrimitives.WriteInt64BigEndian(recordKey.AsSpan(keyBytes.Length + 1), sequence);
                        batch.Delete(recordKey);
                        emptied.Add(recordKey); // compared by its key bytes (see KeyPartComparer)
                        any = true;
                    }
                }

                // The index entries read are exactly those in [from, upper): one range deletion instead of one each.
                if (any) batch.DeleteRange(from, (ulong)from.Length, upper, (ulong)upper.Length, due);
            }

            _database.Write(batch);
        }

        if (watermark > _expiryFloor) _expiryFloor = watermark;
        foreach (var recordKey in emptied)
        {
            if (!HasRecords(recordKey.AsSpan(0, recordKey.Length - 9).ToArray())) _keyCount--;
        }
    }

    public IEnumerable<(TKey Key, IReadOnlyList<TLeft> Left, IReadOnlyList<TRight> Right)> Entries()
    {
        using var it = _database.Db.NewIterator();
        it.SeekToFirst();
        while (it.Valid())
        {
            var reader = new MessagePackReader(it.GetKeySpan());
            var keyBytes = reader.ReadRaw().ToArray();
            var lefts = new List<TLeft>();
            var rights = new List<TRight>();
            // One key's records lie together, its lefts before its rights, each side in the order kept.
            for (; it.Valid() && it.GetKeySpan().StartsWith(keyBytes); it.Next())
            {
                var r = new MessagePackReader(it.GetValueSpan());
                if (it.GetKeySpan()[keyBytes.Length] == LeftSide) lefts.Add(_spec.LeftFormatter.Deserialize(ref r));
                else rights.Add(_spec.RightFormatter.Deserialize(ref r));
            }

            yield return (ReadKey(keyBytes), lefts, rights);
        }
    }

    // ---- deltas -------------------------------------------------------------------------------

    public void WriteDelta(MessagePackWriter writer)
    {
        // The heap buffer's layout: {0: [[key, left], ...], 1: [[key, right], ...], 2: watermark}.
        writer.WriteMapHeader(_spec.Expires ? 3 : 2);
        foreach (byte side in new[] { LeftSide, RightSide })
        {
            writer.Write(side == LeftSide ? AppendedLefts : AppendedRights);
            int count = 0;
            foreach (var a in _appended) if (a.Side == side) count++;
            writer.WriteArrayHeader(count);
            foreach (var a in _appended)
            {
                if (a.Side != side) continue;
                writer.WriteArrayHeader(2);
                writer.WriteRaw(a.KeyBytes);
                writer.WriteRaw(a.Record);
            }
        }

        if (!_spec.Expires) return;
        writer.Write(ExpiredAt);
        writer.Write(_expiredAt);
    }

    public void ApplyDelta(ref MessagePackReader reader)
    {
        BeginBatch();
        try
        {
            if (reader.NextType == MessagePackType.Map) ApplyAppendsAndExpiry(ref reader);
            else ApplyKeyArrays(ref reader, intoEmpty: false);
        }
        finally
        {
            BeginBatch();
        }
    }

    private void ApplyAppendsAndExpiry(ref MessagePackReader reader)
    {
        long? expiredAt = JoinDelta.Read(ref reader, _spec.OperatorId, (left, key, record) => Append(key.ToArray(), left ? LeftSide : RightSide, record.ToArray()));
        if (expiredAt is { } watermark && _spec.Expires) _expiredAt = watermark;
        EndBatch();
    }

    /// <summary>
    /// Format 1 (and the heap's snapshot entries): per-key arrays <c>[key, lefts, rights]</c>, which replace the key's
    /// records, or <c>[key, lefts, rights, true]</c>, which append to them.
    /// </summary>
    /// <param name="reader">The entries.</param>
    /// <param name="intoEmpty">Whether the database is empty (a snapshot is loaded): nothing to replace, one write for all.</param>
    private void ApplyKeyArrays(ref MessagePackReader reader, bool intoEmpty)
    {
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            int fields = reader.ReadArrayHeader();
            if (fields is not (3 or 4)) throw new MessagePackException($"A join entry of operator '{_spec.OperatorId}' is not a [key, left records, right records(, appended)] array.");
            var keyBytes = reader.ReadRaw().ToArray();
            var lefts = ReadRecords(ref reader);
            var rights = ReadRecords(ref reader);
            if (fields == 4 && !reader.ReadBoolean()) throw new MessagePackException($"A join entry of operator '{_spec.OperatorId}' has four fields but is not an append.");
            if (fields == 3 && !intoEmpty) RemoveKey(keyBytes);
            foreach (var l in lefts) Append(keyBytes, LeftSide, l);
            foreach (var r in rights) Append(keyBytes, RightSide, r);
            if (intoEmpty) continue;
            // Written entry by entry: a later entry of the same key replaces what this one wrote.
            EndBatch();
            BeginBatch();
        }

        if (intoEmpty) EndBatch();
    }

    private static List<byte[]> ReadRecords(ref MessagePackReader reader)
    {
        int n = reader.ReadArrayHeader();
        var records = new List<byte[]>(n);
        for (int j = 0; j < n; j++) records.Add(reader.ReadRaw().ToArray());
        return records;
    }

    /// <summary>Keeps a stored record (from a delta): its expiry is read from the record itself.</summary>
    private void Append(byte[] keyBytes, byte side, byte[] record)
    {
        var key = ReadKey(keyBytes);
        var cached = Lookup(key);
        cached.Kept = true;
        long due = 0;
        if (_spec.Expires)
        {
            var r = new MessagePackReader(record);
            due = side == LeftSide ? _spec.LeftExpiry!(_spec.LeftFormatter.Deserialize(ref r)) : _spec.RightExpiry!(_spec.RightFormatter.Deserialize(ref r));
        }

        _appended.Add(new Appended(cached.KeyBytes, side, record, due));
    }

    /// <summary>Deletes every record of a key (a format 1 entry replaces them).</summary>
    private void RemoveKey(byte[] keyBytes)
    {
        var db = _database.Db;
        var due = _spec.Expires ? _database.Family(DueFamily) : null;
        bool had = false;
        using (var batch = new WriteBatch())
        {
            using var it = RangeOf(keyBytes, RightSide + 1);
            for (it.Seek(keyBytes); it.Valid(); it.Next())
            {
                had = true;
                var recordKey = it.Key();
                batch.Delete(recordKey);
                if (due is null) continue;
                byte side = recordKey[keyBytes.Length];
                long sequence = BinaryPrimitives.ReadInt64BigEndian(recordKey.AsSpan(keyBytes.Length + 1));
                var r = new MessagePackReader(it.GetValueSpan());
                long expiry = side == LeftSide ? _spec.LeftExpiry!(_spec.LeftFormatter.Deserialize(ref r)) : _spec.RightExpiry!(_spec.RightFormatter.Deserialize(ref r));
                batch.Delete(DueKey(side, expiry, keyBytes, sequence), due);
            }

            _database.Write(batch);
        }

        if (had) _keyCount--;
    }

    // ---- snapshots ----------------------------------------------------------------------------

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId) => _database.Snapshot(writer, batchId, _keyCount);

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files)
    {
        Clear();
        if (format != SharedStateFileSet.Format)
        {
            // The heap buffer's entries: loaded into a new database (switching backends).
            var reader = new MessagePackReader(part.Span);
            try
            {
                ApplyKeyArrays(ref reader, intoEmpty: true);
            }
            finally
            {
                BeginBatch();
            }

            return;
        }

        _keyCount = _database.Restore(part, files ?? throw new InvalidOperationException($"No checkpoint store to read the state files of operator '{_spec.OperatorId}' from."));
        var next = _database.Db.Get(NextSequenceKey, _database.Family(MetaFamily));
        _nextSequence = next is null ? 0 : BinaryPrimitives.ReadInt64BigEndian(next);
    }

    public void Clear()
    {
        BeginBatch();
        _database.Reset();
        _keyCount = 0;
        _nextSequence = 0;
        _expiryFloor = long.MinValue;
    }

    public void Dispose()
    {
        BeginBatch();
        _database.Dispose();
    }

    // ---- reads and encodings ------------------------------------------------------------------

    /// <summary>
    /// Reads the key's stored records of one side, in the order they were kept, before the records this batch kept of
    /// that side (all newer).
    /// </summary>
    private void LoadSide(Cached cached, byte side)
    {
        var prefix = new byte[cached.KeyBytes.Length + 1];
        cached.KeyBytes.CopyTo(prefix, 0);
        prefix[^1] = side;
        var sides = cached.Sides;
        var stored = new List<byte[]>();
        using (var it = RangeOf(cached.KeyBytes, (byte)(side + 1)))
        {
            for (it.Seek(prefix); it.Valid(); it.Next()) stored.Add(it.Value());
        }

        if (stored.Count > 0) cached.Stored = true;
        if (side == LeftSide)
        {
            cached.LeftLoaded = true;
            if (stored.Count == 0) return;
            var lefts = new List<TLeft>(stored.Count + (sides.Left?.Count ?? 0));
            foreach (var bytes in stored) lefts.Add(Deserialize(_spec.LeftFormatter, bytes));
            if (sides.Left is not null) lefts.AddRange(sides.Left);
            sides.Left = lefts;
        }
        else
        {
            cached.RightLoaded = true;
            if (stored.Count == 0) return;
            var rights = new List<TRight>(stored.Count + (sides.Right?.Count ?? 0));
            foreach (var bytes in stored) rights.Add(Deserialize(_spec.RightFormatter, bytes));
            if (sides.Right is not null) rights.AddRange(sides.Right);
            sides.Right = rights;
        }
    }

    private static T Deserialize<T>(IMessagePackFormatter<T> formatter, byte[] bytes)
    {
        var reader = new MessagePackReader(bytes);
        return formatter.Deserialize(ref reader);
    }

    private bool HasRecords(byte[] keyBytes)
    {
        using var it = RangeOf(keyBytes, RightSide + 1);
        it.Seek(keyBytes);
        return it.Valid();
    }

    /// <summary>
    /// An iterator over the key's records of sides below <paramref name="sideBound"/>: up to <c>[key bytes][sideBound]</c>,
    /// exclusive. A key's MessagePack bytes are self-delimiting, so no other key's records lie in its range.
    /// </summary>
    private Iterator RangeOf(byte[] keyBytes, byte sideBound)
    {
        var upper = new byte[keyBytes.Length + 1];
        keyBytes.CopyTo(upper, 0);
        upper[^1] = sideBound;
        return _database.Db.NewIterator(null, _range.SetIterateUpperBound(upper));
    }

    private byte[] KeyBytes(TKey key)
    {
        _scratch.Clear();
        _spec.KeyFormatter.Serialize(_scratch, key);
        return _scratch.ToArray();
    }

    private TKey ReadKey(byte[] keyBytes)
    {
        var reader = new MessagePackReader(keyBytes);
        return _spec.KeyFormatter.Deserialize(ref reader) ?? throw new MessagePackException($"The state of operator '{_spec.OperatorId}' holds a null key.");
    }

    internal static byte[] RecordKey(byte[] keyBytes, byte side, long sequence)
    {
        var key = new byte[keyBytes.Length + 9];
        keyBytes.CopyTo(key, 0);
        key[keyBytes.Length] = side;
        BinaryPrimitives.WriteInt64BigEndian(key.AsSpan(keyBytes.Length + 1), sequence);
        return key;
    }

    private static byte[] DueKey(byte side, long due, byte[] keyBytes, long sequence)
    {
        var key = new byte[17 + keyBytes.Length];
        key[0] = side;
        BinaryPrimitives.WriteUInt64BigEndian(key.AsSpan(1), Flip(due));
        keyBytes.CopyTo(key, 9);
        BinaryPrimitives.WriteInt64BigEndian(key.AsSpan(9 + keyBytes.Length), sequence);
        return key;
    }

    // Signed times in an order bytes compare in: the sign bit flipped, so that negative times sort first.
    private static ulong Flip(long time) => (ulong)time ^ 0x8000_0000_0000_0000UL;

    /// <summary>Record keys compared by their join key's bytes (all but the side and sequence at the end).</summary>
    private sealed class KeyPartComparer : IEqualityComparer<byte[]>
    {
        public static readonly KeyPartComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan(0, x!.Length - 9).SequenceEqual(y.AsSpan(0, y!.Length - 9));

        public int GetHashCode(byte[] recordKey)
        {
            var hash = new HashCode();
            hash.AddBytes(recordKey.AsSpan(0, recordKey.Length - 9));
            return hash.ToHashCode();
        }
    }
}
