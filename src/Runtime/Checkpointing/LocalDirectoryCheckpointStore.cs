using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// A checkpoint in a local directory. Every write goes to a temporary file, is fsynced, renamed over the
/// final name, and the directory is fsynced, so a crash at any instant leaves either the old or the new
/// file. The lock is an OS file lock (flock), released by the kernel if the process dies.
/// </summary>
/// <remarks>
/// Deleted files are recycled: a small file that retention deletes is renamed to a hidden spare in its
/// directory, and the next write there reuses it as its temporary file instead of creating one. A checkpoint
/// writes and deletes two small files per batch, and creating a file costs far more than reusing one on
/// some file systems (ext4 without a journal scans past every inode deleted in the last ~30 s on each
/// create). RocksDB recycles its write-ahead log files for the same reason. Spares are temporary files, so
/// a listing never shows them and the next start removes them.
/// </remarks>
public sealed class LocalDirectoryCheckpointStore : ICheckpointStore
{
    // At most this many spares per directory (retention deletes one interval's offset and commit files at
    // once), each at most this large, so spares never hold much disk space.
    private const int MaxSparesPerDirectory = 32;
    private const long MaxRecycledBytes = 1 << 20;

    private readonly string _root;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _spares = new(StringComparer.Ordinal);

    /// <summary>Uses (and creates if needed) <paramref name="directory"/>.</summary>
    public LocalDirectoryCheckpointStore(string directory)
    {
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("The checkpoint directory must be a non-empty path.", nameof(directory));
        _root = Path.GetFullPath(directory);
        try
        {
            Directory.CreateDirectory(_root);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot create the checkpoint directory '{_root}': {e.Message} Choose a writable directory.", e);
        }
    }

    /// <inheritdoc />
    public string Location => _root;

    /// <inheritdoc />
    /// <remarks>
    /// Runs on the thread pool: .NET on Unix completes a regular file's "asynchronous" write, and the fsync
    /// and rename after it, on the calling thread, and the runtime overlaps these writes with computing.
    /// </remarks>
    public Task WriteAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        string path = PathOf(name);
        string? spare = _spares.TryGetValue(Path.GetDirectoryName(path)!, out var spares) && spares.TryDequeue(out var s) ? s : null;
        return Task.Run(() => DurableFile.WriteAsync(path, content, cancellationToken, name, durable, spare), CancellationToken.None);
    }

    /// <inheritdoc />
    /// <remarks>The new file is published with <c>link(2)</c>, which fails when the name exists: the check and the write are one step.</remarks>
    public Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        string path = PathOf(name);
        string? spare = _spares.TryGetValue(Path.GetDirectoryName(path)!, out var spares) && spares.TryDequeue(out var s) ? s : null;
        return Task.Run(() => DurableFile.WriteAsync(path, content, cancellationToken, name, durable, spare, createOnly: true), CancellationToken.None);
    }

    /// <inheritdoc />
    public async Task<byte[]?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        string path = PathOf(name);
        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > CheckpointFile.MaxFileBytes)
                throw new CheckpointCorruptException($"Checkpoint file '{name}' is {info.Length} bytes, larger than any checkpoint file can be: it is damaged and is not used.");
            if (info.Exists && !PipelineDsl.IO.FileKind.IsRegularFile(path))
                throw new CheckpointCorruptException($"Checkpoint entry '{name}' is not a regular file (a FIFO, socket or device, which could block a read): it is not used.");
            return await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListAsync(string folder, CancellationToken cancellationToken)
    {
        string path = PathOf(folder);
        IReadOnlyList<string> names = !Directory.Exists(path)
            ? Array.Empty<string>()
            : Directory.EnumerateFiles(path)
                .Select(Path.GetFileName)
                .Where(n => n is not null && !DurableFile.IsTemporary(n))
                .Select(n => folder.TrimEnd('/') + "/" + n)
                .OrderBy(n => n, StringComparer.Ordinal)
                .ToList();
        return Task.FromResult(names);
    }

    /// <inheritdoc />
    public Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        string path = PathOf(name);
        if (!TryRecycle(path)) TryDelete(path);
        return Task.CompletedTask;
    }

    /// <summary>Turns <paramref name="path"/> into a spare for the next write in its directory, if it is small and there is room.</summary>
    private bool TryRecycle(string path)
    {
        var spares = _spares.GetOrAdd(Path.GetDirectoryName(path)!, _ => new ConcurrentQueue<string>());
        if (spares.Count >= MaxSparesPerDirectory) return false;
        try
        {
            var file = new FileInfo(path);
            if (!file.Exists) return true;
            if (file.Length > MaxRecycledBytes) return false;
            if (!PipelineDsl.IO.FileKind.IsRegularFile(path)) return false; // a FIFO reused as a write's temporary file would block it
            string spare = Path.Combine(file.DirectoryName!, "." + DurableFile.SpareName + Guid.NewGuid().ToString("N"));
            File.Move(path, spare, overwrite: true); // a fresh name: a plain rename(2), which .NET uses when overwriting is allowed
            spares.Enqueue(spare);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Removes temporary files left by writes that a crash interrupted. Called by <see cref="AcquireLock"/> once
    /// the lock is held: no other process can be writing them then.
    /// </summary>
    private void RemoveAbandonedTemporaryFiles()
    {
        _spares.Clear();
        foreach (var file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories))
        {
            if (DurableFile.IsTemporary(Path.GetFileName(file))) TryDelete(file);
        }
    }

    /// <inheritdoc />
    public IDisposable AcquireLock(string owner)
    {
        string lockPath = Path.Combine(_root, "lock");
        string infoPath = Path.Combine(_root, "lock.owner");
        FileStream stream;
        try
        {
            // On Unix, FileShare.None makes .NET take an exclusive, non-blocking flock on the file.
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e.HResult == EWouldBlock || e.HResult == unchecked((int)0x80070020) /* sharing violation (Windows) */)
        {
            string holder = "another process";
            try
            {
                if (File.Exists(infoPath)) holder = File.ReadAllText(infoPath);
            }
            catch (Exception readError) when (readError is IOException or UnauthorizedAccessException)
            {
            }

            throw new CheckpointLockedException(
                $"The checkpoint '{_root}' is in use by {holder}. Only one process may run a pipeline on a checkpoint: stop the other process, or give this one another checkpoint directory.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot open the checkpoint '{_root}': {DescribeIoFailure(e, lockPath)}", e);
        }

        try
        {
            File.WriteAllText(infoPath, $"{owner}, process {Environment.ProcessId} on {Environment.MachineName}, since {DateTime.UtcNow:O}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Release at once: a lock held by a stream nobody owns would refuse a retry in this process until a GC.
            stream.Dispose();
            throw new IOException($"Cannot write to the checkpoint '{_root}': {DescribeIoFailure(e, infoPath)}", e);
        }

        RemoveAbandonedTemporaryFiles();
        return new Lease(this, stream);
    }

    /// <inheritdoc />
    /// <remarks>The owner line the last process to take the lock wrote; it stays after that process stops.</remarks>
    public async Task<string?> DescribeLockHolderAsync(CancellationToken cancellationToken)
    {
        try
        {
            return (await File.ReadAllTextAsync(Path.Combine(_root, "lock.owner"), cancellationToken).ConfigureAwait(false)).Trim();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private const int EWouldBlock = 11; // .NET on Unix reports the errno as the IOException's HResult

    /// <summary>Says what an I/O failure on the checkpoint is, in the terms an operator acts on.</summary>
    /// <param name="e">The failure.</param>
    /// <param name="path">The file or directory being written.</param>
    /// <param name="then">What to do once the cause is fixed (a checkpoint: start again; a receiver's log: nothing, it retries).</param>
    internal static string DescribeIoFailure(Exception e, string path, string then = "then start again") => e switch
    {
        UnauthorizedAccessException => $"permission denied on '{path}'. Give this process write access to the directory.",
        IOException { HResult: 28 or unchecked((int)0x80070070) } => $"no space left on the device that holds '{path}'. Free space there (nothing was written), {then}.",
        IOException { HResult: 30 } => $"'{path}' is on a read-only file system. Mount it read-write, or choose a directory on a writable disk.",
        IOException { HResult: 122 } => $"the disk quota is exceeded for '{path}'. Free space or raise the quota, {then}.",
        _ => $"{e.Message} ('{path}').",
    };

    /// <summary>The lock: releasing it first removes the spares, which only the owner could reuse.</summary>
    private sealed class Lease(LocalDirectoryCheckpointStore store, FileStream lockFile) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            foreach (var spares in store._spares.Values)
            {
                while (spares.TryDequeue(out var spare)) TryDelete(spare);
            }

            lockFile.Dispose();
        }
    }

    private string PathOf(string name)
    {
        CheckpointNames.Check(name);
        return Path.Combine(_root, name.Replace('/', Path.DirectorySeparatorChar));
    }

    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>
/// Durable, atomic file replacement: the content goes to a hidden temporary file beside the target, is
/// fsynced, renamed over the target, and the directory is fsynced so that the rename itself survives a
/// power loss. A crash at any point leaves the old file or the new one, never a torn mix.
/// </summary>
internal static class DurableFile
{
    private const string TempSuffix = ".tmp-";

    /// <summary>The name of a recycled file (after its leading dot, before a unique suffix): a temporary file.</summary>
    public const string SpareName = "spare" + TempSuffix;

    public static bool IsTemporary(string fileName) => fileName.StartsWith('.') && fileName.Contains(TempSuffix, StringComparison.Ordinal);

    /// <param name="path">The file to replace.</param>
    /// <param name="content">Its new content.</param>
    /// <param name="cancellationToken">Cancels the write; the old file then stays.</param>
    /// <param name="crashPointDetail">What <see cref="FaultInjection"/> filters on.</param>
    /// <param name="durable">Whether to fsync the file and its directory.</param>
    /// <param name="spare">A temporary file in the same directory to reuse (truncated) instead of creating one.</param>
    /// <param name="createOnly">Publish only if <paramref name="path"/> does not exist (atomically, with link(2)); false is returned when it does.</param>
    public static async Task<bool> WriteAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken, string crashPointDetail = "", bool durable = true, string? spare = null, bool createOnly = false)
    {
        string directory = Path.GetDirectoryName(path)!;
        string NewTemp() => Path.Combine(directory, "." + Path.GetFileName(path) + TempSuffix + Guid.NewGuid().ToString("N"));
        string temp = spare ?? NewTemp();
        try
        {
            FileStream Open()
            {
                if (spare is not null)
                {
                    try
                    {
                        return new FileStream(temp, FileMode.Truncate, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
                    }
                    catch (FileNotFoundException)
                    {
                        temp = NewTemp(); // the spare was removed behind our back: create a temporary file after all
                    }
                }

                Directory.CreateDirectory(directory);
                return new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            }

            await using (var stream = Open())
            {
                await stream.WriteAsync(content, cancellationToken).ConfigureAwait(false);
                FaultInjection.Hit("checkpoint-write-before-fsync", crashPointDetail);
                stream.Flush(flushToDisk: durable);
            }

            FaultInjection.Hit("checkpoint-write-before-rename", crashPointDetail);
            if (createOnly)
            {
                bool created = Publish(temp, path);
                LocalDirectoryCheckpointStore.TryDelete(temp);
                if (!created) return false;
            }
            else
            {
                File.Move(temp, path, overwrite: true);
            }

            if (durable) FsyncDirectory(directory);
            return true;
        }
        catch
        {
            LocalDirectoryCheckpointStore.TryDelete(temp);
            throw;
        }
    }

    /// <summary>Gives <paramref name="temp"/>'s content the name <paramref name="path"/> unless that name exists; false when it does.</summary>
    private static bool Publish(string temp, string path)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())
        {
            if (Native.link(temp, path) == 0) return true;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == 17 /* EEXIST */) return false;
            throw new IOException($"Cannot create '{path}': link(2) failed with errno {errno}.", errno);
        }

        try
        {
            File.Copy(temp, path, overwrite: false); // CopyFile with fail-if-exists: one step on Windows
            return true;
        }
        catch (IOException) when (File.Exists(path))
        {
            return false;
        }
    }

    internal static void FsyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD()) return;
        int fd = Native.open(directory, 0 /* O_RDONLY */);
        if (fd < 0) return;
        try
        {
            Native.fsync(fd);
        }
        finally
        {
            Native.close(fd);
        }
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        internal static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        internal static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        internal static extern int close(int fd);

        [DllImport("libc", SetLastError = true)]
        internal static extern int link([MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath);
    }
}
