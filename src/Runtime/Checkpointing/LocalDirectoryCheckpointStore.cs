using System;
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
public sealed class LocalDirectoryCheckpointStore : ICheckpointStore
{
    private readonly string _root;

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
    public Task WriteAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken) =>
        DurableFile.WriteAsync(PathOf(name), content, cancellationToken, name, durable);

    /// <inheritdoc />
    public async Task<byte[]?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        string path = PathOf(name);
        try
        {
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
        TryDelete(PathOf(name));
        return Task.CompletedTask;
    }

    /// <summary>Removes temporary files left by writes that a crash interrupted.</summary>
    public void RemoveAbandonedTemporaryFiles()
    {
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
        try
        {
            // On Unix, FileShare.None makes .NET take an exclusive, non-blocking flock on the file.
            var stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            File.WriteAllText(infoPath, $"{owner}, process {Environment.ProcessId} on {Environment.MachineName}, since {DateTime.UtcNow:O}");
            return stream;
        }
        catch (IOException e)
        {
            string holder = File.Exists(infoPath) ? File.ReadAllText(infoPath) : "another process";
            throw new CheckpointLockedException(
                $"The checkpoint '{_root}' is in use by {holder}. Only one process may run a pipeline on a checkpoint: stop the other process, or give this one another checkpoint directory.", e);
        }
    }

    private string PathOf(string name)
    {
        if (name.Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(name)) throw new ArgumentException($"Invalid checkpoint entry name '{name}'.", nameof(name));
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
/// Test hooks that kill the process (SIGKILL, like <c>kill -9</c>) at a named point, so crash tests can hit
/// the narrow windows of the checkpoint protocol deterministically. Set <c>PIPELINEDSL_CRASH_AT</c> to
/// <c>point</c> or <c>point@substring-of-the-entry-name</c>. Unset in production: a single environment read.
/// </summary>
internal static class CrashPoints
{
    private static readonly string? Spec = Environment.GetEnvironmentVariable("PIPELINEDSL_CRASH_AT");

    public static void Hit(string point, string detail = "")
    {
        if (Spec is null) return;
        int at = Spec.IndexOf('@');
        string name = at < 0 ? Spec : Spec[..at];
        string filter = at < 0 ? "" : Spec[(at + 1)..];
        if (name == point && detail.Contains(filter, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"PIPELINEDSL_CRASH_AT: killing the process at {point} {detail}");
            Console.Error.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
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

    public static bool IsTemporary(string fileName) => fileName.StartsWith('.') && fileName.Contains(TempSuffix, StringComparison.Ordinal);

    public static async Task WriteAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken, string crashPointDetail = "", bool durable = true)
    {
        string directory = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(directory);
        string temp = Path.Combine(directory, "." + Path.GetFileName(path) + TempSuffix + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                await stream.WriteAsync(content, cancellationToken).ConfigureAwait(false);
                CrashPoints.Hit("checkpoint-write-before-fsync", crashPointDetail);
                stream.Flush(flushToDisk: durable);
            }

            CrashPoints.Hit("checkpoint-write-before-rename", crashPointDetail);
            File.Move(temp, path, overwrite: true);
            if (durable) FsyncDirectory(directory);
        }
        catch
        {
            LocalDirectoryCheckpointStore.TryDelete(temp);
            throw;
        }
    }

    private static void FsyncDirectory(string directory)
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
    }
}
