using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.Checkpointing;
using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// One keyed operator's state in a RocksDB database (see <see cref="RocksDbStateBackend"/>).
/// </summary>
/// <remarks>
/// <para>
/// Layout in the database: the default column family maps a key's MessagePack bytes to the batch that last wrote it
/// and its value (two MessagePack values, one after the other). An operator that expires idle keys also has the
/// column family <c>idle</c>, with one empty entry per key under <c>[last batch, 8 bytes big-endian][key bytes]</c>,
/// so that expiry reads only the keys that are due, in order, instead of every key.
/// </para>
/// <para>
/// A batch reads each key it meets once (then from its cache), and writes its changes as one write batch at its end,
/// without RocksDB's own log: the commit file's delta is the durable copy, and the database is rebuilt from the
/// checkpoint at every start.
/// </para>
/// </remarks>
internal sealed class RocksDbKeyedStore<TKey, TValue> : IExternalKeyedStore<TKey, TValue> where TKey : notnull
{
    private const string IdleFamily = "idle";

    private readonly RocksDbStateBackend _backend;
    private readonly KeyedStoreSpec<TKey, TValue> _spec;
    private readonly string _operatorDirectory;
    private readonly string _filesDirectory;
    private readonly WriteOptions _writeOptions = new WriteOptions().DisableWal(1);
    private readonly MessagePackWriter _scratch = new(256);

    private RocksDbSharp.RocksDb? _db;
    private ColumnFamilyHandle? _idle;
    private string _instance = "";
    private string _databaseDirectory = "";
    private long _count;
    private bool _disposed;

    // The keys the current batch met, with what it did to them.
    private readonly Dictionary<TKey, Entry> _batch = new();

    // The database files already in the checkpoint store (listed by the newest snapshot this store took or restored), by local name.
    private Dictionary<string, SharedStateFile> _stored = new(StringComparer.Ordinal);

    public RocksDbKeyedStore(RocksDbStateBackend backend, KeyedStoreSpec<TKey, TValue> spec)
    {
        _backend = backend;
        _spec = spec;
        _operatorDirectory = Path.Combine(backend.Directory, Safe(spec.PipelineId), Safe(spec.OperatorId));
        // This store's copies of the files its snapshots list, for a fast restart: its own directory, so that it never
        // prunes what another process's store (a standby on the same machine) is uploading or restoring from.
        _filesDirectory = Path.Combine(_operatorDirectory, $"files-{Environment.ProcessId}-{Guid.NewGuid():N}");
    }

    private sealed class Entry
    {
        public required byte[] KeyBytes;
        public TValue Value = default!;
        public long LastSeen;
        public bool Live;
        public bool ExistedBefore;
        public long StoredLastSeen;
        public bool Dirty;
    }

    public long Count => _count;

    public long TouchedCount => _batch.Values.Count(e => e.Dirty);

    private RocksDbSharp.RocksDb Db => _db ?? Open(null);

    public void BeginBatch() => _batch.Clear();

    public bool TryGet(TKey key, out TValue value)
    {
        var entry = Lookup(key);
        value = entry.Value;
        return entry.Live;
    }

    public void Put(TKey key, TValue value, long batchId)
    {
        var entry = Lookup(key);
        entry.Value = value;
        entry.LastSeen = batchId;
        entry.Live = true;
        entry.Dirty = true;
    }

    public void Remove(TKey key)
    {
        var entry = Lookup(key);
        entry.Value = default!;
        entry.Live = false;
        entry.Dirty = true;
    }

    private Entry Lookup(TKey key)
    {
        if (_batch.TryGetValue(key, out var entry)) return entry;
        var keyBytes = KeyBytes(key);
        entry = new Entry { KeyBytes = keyBytes };
        var stored = Db.Get(keyBytes);
        if (stored is not null)
        {
            (entry.StoredLastSeen, entry.Value) = DecodeValue(stored, null);
            entry.LastSeen = entry.StoredLastSeen;
            entry.Live = entry.ExistedBefore = true;
        }

        _batch.Add(key, entry);
        return entry;
    }

    public void EndBatch()
    {
        using var batch = new WriteBatch();
        foreach (var entry in _batch.Values)
        {
            if (!entry.Dirty) continue;
            if (entry.Live)
            {
                batch.Put(entry.KeyBytes, EncodeValue(entry.LastSeen, entry.Value));
                if (_idle is not null)
                {
                    if (entry.ExistedBefore) batch.Delete(IdleKey(entry.StoredLastSeen, entry.KeyBytes), _idle);
                    batch.Put(IdleKey(entry.LastSeen, entry.KeyBytes), Array.Empty<byte>(), _idle);
                }

                if (!entry.ExistedBefore) _count++;
            }
            else if (entry.ExistedBefore)
            {
                batch.Delete(entry.KeyBytes);
                if (_idle is not null) batch.Delete(IdleKey(entry.StoredLastSeen, entry.KeyBytes), _idle);
                _count--;
            }
        }

        if (batch.Count() > 0) Db.Write(batch, _writeOptions);
    }

    public void Expire(long batchId, long idleBatches, List<(TKey Key, TValue Value)> expired)
    {
        var db = Db;
        if (_idle is null) throw new InvalidOperationException($"Operator '{_spec.OperatorId}' expires idle keys but its store was opened without the idle index.");
        long dueThrough = batchId - idleBatches;
        if (dueThrough < 0) return;
        var upper = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(upper, dueThrough + 1);
        var options = new ReadOptions().SetIterateUpperBound(upper);
        using var it = db.NewIterator(_idle, options);
        for (it.SeekToFirst(); it.Valid(); it.Next())
        {
            var idleKey = it.GetKeySpan();
            var keyBytes = idleKey[8..].ToArray();
            var reader = new MessagePackReader(keyBytes);
            TKey key = _spec.KeyFormatter.Deserialize(ref reader);
            if (_batch.TryGetValue(key, out var entry))
            {
                // Met in this batch: written now (not idle), or already removed.
                if (!entry.Live || entry.LastSeen > dueThrough) continue;
            }
            else
            {
                entry = Lookup(key);
                if (!entry.Live) continue;
            }

            expired.Add((key, entry.Value));
            Remove(key);
        }
    }

    public IEnumerable<(TKey Key, TValue Value, long LastSeenBatch)> Entries()
    {
        using var it = Db.NewIterator();
        for (it.SeekToFirst(); it.Valid(); it.Next())
        {
            var reader = new MessagePackReader(it.GetKeySpan());
            TKey key = _spec.KeyFormatter.Deserialize(ref reader);
            var (lastSeen, value) = DecodeValue(it.GetValueSpan(), null);
            yield return (key, value, lastSeen);
        }
    }

    public void WriteDelta(MessagePackWriter writer)
    {
        // The in-memory store's layout: [[removed keys], [[key, value, lastSeen], ...]].
        writer.WriteArrayHeader(2);
        writer.WriteArrayHeader(_batch.Values.Count(e => e.Dirty && !e.Live && e.ExistedBefore));
        foreach (var entry in _batch.Values)
        {
            if (entry.Dirty && !entry.Live && entry.ExistedBefore) writer.WriteRaw(entry.KeyBytes);
        }

        writer.WriteArrayHeader(_batch.Values.Count(e => e.Dirty && e.Live));
        foreach (var entry in _batch.Values)
        {
            if (!entry.Dirty || !entry.Live) continue;
            writer.WriteArrayHeader(3);
            writer.WriteRaw(entry.KeyBytes);
            _spec.ValueFormatter.Serialize(writer, entry.Value);
            writer.Write(entry.LastSeen);
        }
    }

    public void ApplyDelta(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        _batch.Clear();
        var db = Db;
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"The delta of operator '{_spec.OperatorId}' is not a [removed, touched] pair.");
        using (var removals = new WriteBatch())
        {
            int removed = reader.ReadArrayHeader();
            for (int i = 0; i < removed; i++)
            {
                var keyBytes = reader.ReadRaw().ToArray();
                var stored = db.Get(keyBytes);
                if (stored is null) continue;
                removals.Delete(keyBytes);
                if (_idle is not null) removals.Delete(IdleKey(DecodeLastSeen(stored), keyBytes), _idle);
                _count--;
            }

            if (removals.Count() > 0) db.Write(removals, _writeOptions);
        }

        using var puts = new WriteBatch();
        int touched = reader.ReadArrayHeader();
        for (int i = 0; i < touched; i++)
        {
            if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A state entry of operator '{_spec.OperatorId}' is not a [key, value, lastSeen] triple.");
            var keyBytes = reader.ReadRaw().ToArray();
            TValue value = migrate is null ? _spec.ValueFormatter.Deserialize(ref reader) : migrate(ref reader);
            long lastSeen = reader.ReadInt64();
            var stored = db.Get(keyBytes);
            puts.Put(keyBytes, EncodeValue(lastSeen, value));
            if (_idle is not null)
            {
                if (stored is not null) puts.Delete(IdleKey(DecodeLastSeen(stored), keyBytes), _idle);
                puts.Put(IdleKey(lastSeen, keyBytes), Array.Empty<byte>(), _idle);
            }

            if (stored is null) _count++;
        }

        if (puts.Count() > 0) db.Write(puts, _writeOptions);
    }

    public void Clear()
    {
        Close(deleteDatabase: true);
        _stored = new Dictionary<string, SharedStateFile>(StringComparer.Ordinal);
        _count = 0;
    }

    // ---- snapshots -----------------------------------------------------------------------------

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId)
    {
        var db = Db;
        // A RocksDB checkpoint: hard links to the immutable table files, copies of the small files that change. Its
        // 0 flushes every column family's memtable first (there is no RocksDB log to hold what they have).
        string taken = Path.Combine(_operatorDirectory, $"snapshot-{Environment.ProcessId}-{_instance}-{batchId}");
        if (System.IO.Directory.Exists(taken)) System.IO.Directory.Delete(taken, recursive: true);
        using (var checkpoint = db.Checkpoint()) checkpoint.Save(taken, 0);

        try
        {
            System.IO.Directory.CreateDirectory(_filesDirectory);
            var files = new List<SharedStateFile>();
            var inline = new List<(string, byte[])>();
            var uploads = new List<SharedStateUpload>();
            var listed = new Dictionary<string, SharedStateFile>(StringComparer.Ordinal);
            foreach (var path in System.IO.Directory.GetFiles(taken).Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileName(path);
                if (!name.EndsWith(".sst", StringComparison.Ordinal))
                {
                    inline.Add((name, File.ReadAllBytes(path)));
                    continue;
                }

                if (!_stored.TryGetValue(name, out var file))
                {
                    var bytes = File.ReadAllBytes(path);
                    file = new SharedStateFile(name, SharedStateFiles.NameFor(_spec.OperatorId, _instance, name), bytes.Length, CheckpointFile.Crc32C(bytes));
                    string kept = KeptPath(file);
                    File.Move(path, kept, overwrite: true);
                    uploads.Add(new SharedStateUpload(file, kept));
                }

                files.Add(file);
                listed[name] = file;
            }

            new SharedStateFileSet(_count, files, inline).Write(writer);
            _stored = listed;
            PruneKeptFiles(listed.Values);
            return uploads;
        }
        finally
        {
            System.IO.Directory.Delete(taken, recursive: true);
        }
    }

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, StateDecoder<TValue>? migrate, SharedStateFiles files)
    {
        Close(deleteDatabase: true);
        _count = 0;
        _stored = new Dictionary<string, SharedStateFile>(StringComparer.Ordinal);
        if (format != SharedStateFileSet.Format)
        {
            // The in-memory backend's entries: loaded into a new database (switching backends).
            var reader = new MessagePackReader(part.Span);
            LoadEntries(ref reader, migrate);
            return;
        }

        string where = $"The snapshot of operator '{_spec.OperatorId}' in '{files.Location}'";
        var set = SharedStateFileSet.Read(part.Span, where);
        string directory = NewDatabaseDirectory();
        System.IO.Directory.CreateDirectory(directory);
        System.IO.Directory.CreateDirectory(_filesDirectory);
        foreach (var file in set.Files)
        {
            string kept = KeptPath(file);
            if (!IsIntact(kept, file) && !LinkKeptElsewhere(file, kept)) files.DownloadAsync(file, kept, where, default).GetAwaiter().GetResult();
            Link(kept, Path.Combine(directory, file.LocalName));
            _stored[file.LocalName] = file;
        }

        foreach (var (name, content) in set.Inline) File.WriteAllBytes(Path.Combine(directory, name), content);
        Open(directory);
        _count = set.Count;
        if (migrate is not null) MigrateAll(migrate);
    }

    /// <summary>Rewrites every value from the stored version to the current one (an upgrade's restore, once).</summary>
    private void MigrateAll(StateDecoder<TValue> migrate)
    {
        var db = Db;
        var batch = new WriteBatch();
        try
        {
            using var it = db.NewIterator();
            for (it.SeekToFirst(); it.Valid(); it.Next())
            {
                var (lastSeen, value) = DecodeValue(it.GetValueSpan(), migrate);
                batch.Put(it.Key(), EncodeValue(lastSeen, value));
                if (batch.Count() >= 10_000)
                {
                    db.Write(batch, _writeOptions);
                    batch.Dispose();
                    batch = new WriteBatch();
                }
            }

            if (batch.Count() > 0) db.Write(batch, _writeOptions);
        }
        finally
        {
            batch.Dispose();
        }
    }

    private void LoadEntries(ref MessagePackReader reader, StateDecoder<TValue>? migrate)
    {
        var db = Db;
        int count = reader.ReadArrayHeader();
        var batch = new WriteBatch();
        try
        {
            for (int i = 0; i < count; i++)
            {
                if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A state entry of operator '{_spec.OperatorId}' is not a [key, value, lastSeen] triple.");
                var keyBytes = reader.ReadRaw().ToArray();
                TValue value = migrate is null ? _spec.ValueFormatter.Deserialize(ref reader) : migrate(ref reader);
                long lastSeen = reader.ReadInt64();
                batch.Put(keyBytes, EncodeValue(lastSeen, value));
                if (_idle is not null) batch.Put(IdleKey(lastSeen, keyBytes), Array.Empty<byte>(), _idle);
                if (batch.Count() >= 10_000)
                {
                    db.Write(batch, _writeOptions);
                    batch.Dispose();
                    batch = new WriteBatch();
                }
            }

            if (batch.Count() > 0) db.Write(batch, _writeOptions);
            _count = count;
        }
        finally
        {
            batch.Dispose();
        }
    }

    // ---- the database and its files ------------------------------------------------------------

    private RocksDbSharp.RocksDb Open(string? directory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        RemoveAbandonedDirectories();
        directory ??= NewDatabaseDirectory();
        System.IO.Directory.CreateDirectory(directory);
        var table = new BlockBasedTableOptions()
            .SetBlockCache(_backend.BlockCache)
            .SetFilterPolicy(BloomFilterPolicy.Create(10, false))
            .SetCacheIndexAndFilterBlocks(true)
            .SetPinL0FilterAndIndexBlocksInCache(true);
        var family = new ColumnFamilyOptions()
            .SetBlockBasedTableFactory(table)
            .SetWriteBufferSize((ulong)_backend.WriteBufferBytes)
            .SetMaxWriteBufferNumber(2);
        var options = new DbOptions()
            .SetCreateIfMissing(true)
            .SetCreateMissingColumnFamilies(true)
            .SetMaxOpenFiles(256)
            .SetInfoLogLevel(InfoLogLevel.Warn);
        var families = new ColumnFamilies(family);
        if (_spec.TracksIdleKeys) families.Add(IdleFamily, family);
        try
        {
            _db = RocksDbSharp.RocksDb.Open(options, directory, families);
        }
        catch (RocksDbException e)
        {
            throw new IOException($"The RocksDB state of operator '{_spec.OperatorId}' cannot be opened in '{directory}': {e.Message}", e);
        }

        _idle = _spec.TracksIdleKeys ? _db.GetColumnFamily(IdleFamily) : null;
        _databaseDirectory = directory;
        return _db;
    }

    private string NewDatabaseDirectory()
    {
        _instance = Guid.NewGuid().ToString("N");
        return Path.Combine(_operatorDirectory, $"db-{Environment.ProcessId}-{_instance}");
    }

    private void Close(bool deleteDatabase)
    {
        _batch.Clear();
        if (_db is null) return;
        _db.Dispose();
        _db = null;
        _idle = null;
        if (deleteDatabase && System.IO.Directory.Exists(_databaseDirectory)) System.IO.Directory.Delete(_databaseDirectory, recursive: true);
    }

    /// <summary>
    /// Deletes the databases and snapshot directories of processes that are gone (a crash leaves its working copy
    /// behind). Another live process's (a standby on the same machine) are left alone.
    /// </summary>
    private void RemoveAbandonedDirectories()
    {
        if (!System.IO.Directory.Exists(_operatorDirectory)) return;
        foreach (var path in System.IO.Directory.GetDirectories(_operatorDirectory))
        {
            var parts = Path.GetFileName(path).Split('-');
            if (parts.Length < 3 || parts[0] is not ("db" or "snapshot" or "files")) continue;
            bool done = parts[1] == "done"; // a closed store's kept files
            if (!done && (!int.TryParse(parts[1], out int pid) || pid == Environment.ProcessId || IsAlive(pid))) continue;
            try
            {
                System.IO.Directory.Delete(path, recursive: true);
            }
            catch (IOException)
            {
                // Removed by another process meanwhile, or in use: tried again at the next start.
            }
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private string KeptPath(SharedStateFile file) => Path.Combine(_filesDirectory, file.SharedName[(SharedStateFiles.Folder.Length + 1)..]);

    /// <summary>Keeps, of the files kept for a fast restart, those the newest snapshot lists.</summary>
    private void PruneKeptFiles(IEnumerable<SharedStateFile> listed)
    {
        var keep = listed.Select(KeptPath).ToHashSet(StringComparer.Ordinal);
        foreach (var path in System.IO.Directory.GetFiles(_filesDirectory))
        {
            if (keep.Contains(path)) continue;
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Links an intact copy kept by an earlier run (of a process now gone, or another store) into this store's files.</summary>
    private bool LinkKeptElsewhere(SharedStateFile file, string kept)
    {
        string name = Path.GetFileName(kept);
        foreach (var directory in System.IO.Directory.GetDirectories(_operatorDirectory, "files-*"))
        {
            string candidate = Path.Combine(directory, name);
            if (candidate == kept) continue;
            try
            {
                // Another store starting on this machine (a restart, a standby, a parallel test) deletes closed stores'
                // copies: the candidate can vanish between any two of these steps. A copy that is not there whole is
                // not used; the file is then downloaded (and verified) from the checkpoint store.
                if (!IsIntact(candidate, file)) continue;
                if (File.Exists(kept)) File.Delete(kept);
                Link(candidate, kept); // a hard link (or a copy) of the verified file: deleting the candidate now leaves it whole
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Removed meanwhile: try the next, or download.
            }
        }

        return false;
    }

    private static bool IsIntact(string path, SharedStateFile file)
    {
        if (!File.Exists(path) || new FileInfo(path).Length != file.Size) return false;
        return CheckpointFile.Crc32C(File.ReadAllBytes(path)) == file.Crc;
    }

    private static void Link(string existing, string link) => FileLinks.LinkOrCopy(existing, link);

    public void Dispose()
    {
        if (_disposed) return;
        // The kept files stay for the next run of the pipeline on this machine to restore from, marked as no longer
        // any live store's: that run removes them once it has restored.
        Close(deleteDatabase: true);
        try
        {
            if (System.IO.Directory.Exists(_filesDirectory))
                System.IO.Directory.Move(_filesDirectory, Path.Combine(_operatorDirectory, "files-done-" + Path.GetFileName(_filesDirectory).Split('-')[^1]));
        }
        catch (IOException)
        {
            // Left under its process's name: removed once that process is gone.
        }

        _disposed = true;
    }

    // ---- encodings ----------------------------------------------------------------------------

    private byte[] KeyBytes(TKey key)
    {
        _scratch.Clear();
        _spec.KeyFormatter.Serialize(_scratch, key);
        return _scratch.ToArray();
    }

    private byte[] EncodeValue(long lastSeen, TValue value)
    {
        _scratch.Clear();
        _scratch.Write(lastSeen);
        _spec.ValueFormatter.Serialize(_scratch, value);
        return _scratch.ToArray();
    }

    private (long LastSeen, TValue Value) DecodeValue(ReadOnlySpan<byte> stored, StateDecoder<TValue>? migrate)
    {
        var reader = new MessagePackReader(stored);
        long lastSeen = reader.ReadInt64();
        return (lastSeen, migrate is null ? _spec.ValueFormatter.Deserialize(ref reader) : migrate(ref reader));
    }

    private static long DecodeLastSeen(ReadOnlySpan<byte> stored)
    {
        var reader = new MessagePackReader(stored);
        return reader.ReadInt64();
    }

    private static byte[] IdleKey(long lastSeen, byte[] keyBytes)
    {
        var key = new byte[8 + keyBytes.Length];
        BinaryPrimitives.WriteInt64BigEndian(key, lastSeen);
        keyBytes.CopyTo(key, 8);
        return key;
    }

    private static string Safe(string name) => new(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());
}

internal static class FileLinks
{
    /// <summary>A hard link (the files are immutable: RocksDB never writes a table file again), or a copy where links are not possible.</summary>
    public static void LinkOrCopy(string existing, string link)
    {
        if (!OperatingSystem.IsWindows() && HardLink(existing, link) == 0) return;
        File.Copy(existing, link, overwrite: true);
    }

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int HardLink(string existing, string link);
}
