using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.Checkpointing;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// One operator's RocksDB database and its files: where it lives on local disk, how it is opened, how a snapshot of it
/// becomes a <see cref="SharedStateFileSet"/> (uploading only the table files the checkpoint store does not have yet),
/// how a snapshot is restored from the files kept locally or downloaded, and how a crashed run's leftovers are removed.
/// The stores (<see cref="RocksDbKeyedStore{TKey, TValue}"/>, <see cref="RocksDbJoinBuffer{TKey, TLeft, TRight}"/>)
/// own what their keys and values mean; this class owns the database's life and files.
/// </summary>
/// <remarks>
/// The database is a working copy without RocksDB's own log: each batch's changes are in its commit file (the durable
/// copy), and the database is rebuilt from the checkpoint at every start.
/// </remarks>
internal sealed class RocksDbOperatorDatabase : IDisposable
{
    private readonly RocksDbStateBackend _backend;
    private readonly string _operatorId;
    private readonly IReadOnlyList<string> _families;
    private readonly string _operatorDirectory;
    private readonly string _filesDirectory;

    private RocksDbSharp.RocksDb? _db;
    private string _instance = "";
    private string _databaseDirectory = "";
    private bool _disposed;

    // The database files already in the checkpoint store (listed by the newest snapshot this store took or restored), by local name.
    private Dictionary<string, SharedStateFile> _stored = new(StringComparer.Ordinal);

    // The files the snapshot before the newest listed: its upload may still be running when the next is taken (the
    // final snapshot of a run follows the one in flight), so its local copies are kept one snapshot longer.
    private IReadOnlyCollection<SharedStateFile> _previouslyListed = Array.Empty<SharedStateFile>();

    /// <param name="backend">The backend (local directory, block cache, write buffer size).</param>
    /// <param name="pipelineId">The pipeline's id: the database lives under a directory named after it.</param>
    /// <param name="operatorId">The operator's id, for the directory and for errors.</param>
    /// <param name="families">Column families besides the default one.</param>
    public RocksDbOperatorDatabase(RocksDbStateBackend backend, string pipelineId, string operatorId, params string[] families)
    {
        _backend = backend;
        _operatorId = operatorId;
        _families = families;
        _operatorDirectory = Path.Combine(backend.Directory, Safe(pipelineId), Safe(operatorId));
        // This store's copies of the files its snapshots list, for a fast restart: its own directory, so that it never
        // prunes what another process's store (a standby on the same machine) is uploading or restoring from.
        _filesDirectory = Path.Combine(_operatorDirectory, $"files-{Environment.ProcessId}-{Guid.NewGuid():N}");
    }

    /// <summary>Writes without RocksDB's log: the commit file's delta is the durable copy.</summary>
    public WriteOptions WriteOptions { get; } = new WriteOptions().DisableWal(1);

    /// <summary>The open database (a new, empty one when none is open).</summary>
    public RocksDbSharp.RocksDb Db => _db ?? Open(null);

    /// <summary>A column family given at construction.</summary>
    public ColumnFamilyHandle Family(string name) => Db.GetColumnFamily(name);

    public void Write(WriteBatch batch)
    {
        if (batch.Count() > 0) Db.Write(batch, WriteOptions);
    }

    /// <summary>Closes and deletes the working database and forgets which files the checkpoint store has: state is empty.</summary>
    public void Reset()
    {
        Close(deleteDatabase: true);
        _stored = new Dictionary<string, SharedStateFile>(StringComparer.Ordinal);
        _previouslyListed = Array.Empty<SharedStateFile>();
    }

    /// <summary>
    /// Takes a snapshot after batch <paramref name="batchId"/>: writes the <see cref="SharedStateFileSet"/> listing the
    /// database's files (with <paramref name="count"/>, the keys held) into <paramref name="writer"/> and returns the
    /// files not uploaded by an earlier snapshot.
    /// </summary>
    public IReadOnlyList<SharedStateUpload> Snapshot(MessagePackWriter writer, long batchId, long count)
    {
        var db = Db;
        // A RocksDB checkpoint: hard links to the immutable table files, copies of the small files that change. Its
        // 0 flushes every column family's memtable first (there is no RocksDB log to hold what they have).
        string taken = Path.Combine(_operatorDirectory, $"snapshot-{Environment.ProcessId}-{_instance}-{batchId}");
        if (Directory.Exists(taken)) Directory.Delete(taken, recursive: true);
        using (var checkpoint = db.Checkpoint()) checkpoint.Save(taken, 0);

        try
        {
            Directory.CreateDirectory(_filesDirectory);
            var files = new List<SharedStateFile>();
            var inline = new List<(string, byte[])>();
            var uploads = new List<SharedStateUpload>();
            var listed = new Dictionary<string, SharedStateFile>(StringComparer.Ordinal);
            foreach (var path in Directory.GetFiles(taken).Order(StringComparer.Ordinal))
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
                    file = new SharedStateFile(name, SharedStateFiles.NameFor(_operatorId, _instance, name), bytes.Length, CheckpointFile.Crc32C(bytes));
                    string kept = KeptPath(file);
                    File.Move(path, kept, overwrite: true);
                    uploads.Add(new SharedStateUpload(file, kept));
                }

                files.Add(file);
                listed[name] = file;
            }

            new SharedStateFileSet(count, files, inline).Write(writer);
            PruneKeptFiles(listed.Values.Concat(_previouslyListed));
            _previouslyListed = listed.Values;
            _stored = listed;
            return uploads;
        }
        finally
        {
            Directory.Delete(taken, recursive: true);
        }
    }

    /// <summary>
    /// Replaces the database with the one a snapshot part of format <see cref="SharedStateFileSet.Format"/> lists (each
    /// file from the local copies where intact, downloaded and verified otherwise) and returns the keys it holds.
    /// </summary>
    public long Restore(ReadOnlyMemory<byte> part, SharedStateFiles files)
    {
        Reset();
        string where = $"The snapshot of operator '{_operatorId}' in '{files.Location}'";
        var set = SharedStateFileSet.Read(part.Span, where);
        string directory = NewDatabaseDirectory();
        Directory.CreateDirectory(directory);
        Directory.CreateDirectory(_filesDirectory);
        foreach (var file in set.Files)
        {
            string kept = KeptPath(file);
            if (!IsIntact(kept, file) && !LinkKeptElsewhere(file, kept)) files.DownloadAsync(file, kept, where, default).GetAwaiter().GetResult();
            FileLinks.LinkOrCopy(kept, Path.Combine(directory, file.LocalName));
            _stored[file.LocalName] = file;
        }

        foreach (var (name, content) in set.Inline) File.WriteAllBytes(Path.Combine(directory, name), content);
        Open(directory);
        return set.Count;
    }

    private RocksDbSharp.RocksDb Open(string? directory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        RemoveAbandonedDirectories();
        directory ??= NewDatabaseDirectory();
        Directory.CreateDirectory(directory);
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
        foreach (var name in _families) families.Add(name, family);
        try
        {
            _db = RocksDbSharp.RocksDb.Open(options, directory, families);
        }
        catch (RocksDbException e)
        {
            throw new IOException($"The RocksDB state of operator '{_operatorId}' cannot be opened in '{directory}': {e.Message}", e);
        }

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
        if (_db is null) return;
        _db.Dispose();
        _db = null;
        if (deleteDatabase && Directory.Exists(_databaseDirectory)) Directory.Delete(_databaseDirectory, recursive: true);
    }

    /// <summary>
    /// Deletes the databases and snapshot directories of processes that are gone (a crash leaves its working copy
    /// behind). Another live process's (a standby on the same machine) are left alone.
    /// </summary>
    private void RemoveAbandonedDirectories()
    {
        if (!Directory.Exists(_operatorDirectory)) return;
        foreach (var path in Directory.GetDirectories(_operatorDirectory))
        {
            var parts = Path.GetFileName(path).Split('-');
            if (parts.Length < 3 || parts[0] is not ("db" or "snapshot" or "files")) continue;
            bool done = parts[1] == "done"; // a closed store's kept files
            if (!done && (!int.TryParse(parts[1], out int pid) || pid == Environment.ProcessId || IsAlive(pid))) continue;
            try
            {
                Directory.Delete(path, recursive: true);
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

    /// <summary>Keeps, of the files kept for a fast restart, those the newest snapshots list.</summary>
    private void PruneKeptFiles(IEnumerable<SharedStateFile> listed)
    {
        var keep = listed.Select(KeptPath).ToHashSet(StringComparer.Ordinal);
        foreach (var path in Directory.GetFiles(_filesDirectory))
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
        foreach (var directory in Directory.GetDirectories(_operatorDirectory, "files-*"))
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
                FileLinks.LinkOrCopy(candidate, kept); // a hard link (or a copy) of the verified file: deleting the candidate now leaves it whole
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

    public void Dispose()
    {
        if (_disposed) return;
        // The kept files stay for the next run of the pipeline on this machine to restore from, marked as no longer
        // any live store's: that run removes them once it has restored.
        Close(deleteDatabase: true);
        try
        {
            if (Directory.Exists(_filesDirectory))
                Directory.Move(_filesDirectory, Path.Combine(_operatorDirectory, "files-done-" + Path.GetFileName(_filesDirectory).Split('-')[^1]));
        }
        catch (IOException)
        {
            // Left under its process's name: removed once that process is gone.
        }

        _disposed = true;
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
