using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// A checkpoint held in memory: NOT durable, lost with the process. For tests, benchmarks, and pipelines
/// whose exactly-once guarantee is not needed. The lock is process-local.
/// </summary>
public sealed class InMemoryCheckpointStore : ICheckpointStore
{
    private readonly SortedDictionary<string, byte[]> _files = new(StringComparer.Ordinal);
    private int _locked;

    /// <inheritdoc />
    public string Location => "memory";

    /// <summary>Total bytes currently stored.</summary>
    public long Size
    {
        get
        {
            lock (_files) return _files.Values.Sum(f => (long)f.Length);
        }
    }

    /// <inheritdoc />
    public Task WriteAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        CheckpointNames.Check(name);
        lock (_files) _files[name] = content.ToArray();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        CheckpointNames.Check(name);
        lock (_files) return Task.FromResult(_files.TryAdd(name, content.ToArray()));
    }

    /// <inheritdoc />
    public Task<byte[]?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        CheckpointNames.Check(name);
        lock (_files) return Task.FromResult(_files.TryGetValue(name, out var f) ? (byte[]?)f.ToArray() : null);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListAsync(string folder, CancellationToken cancellationToken)
    {
        string prefix = folder.TrimEnd('/') + "/";
        lock (_files)
        {
            IReadOnlyList<string> names = _files.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && k.IndexOf('/', prefix.Length) < 0).ToList();
            return Task.FromResult(names);
        }
    }

    /// <inheritdoc />
    public Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        CheckpointNames.Check(name);
        lock (_files) _files.Remove(name);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public IDisposable AcquireLock(string owner)
    {
        if (Interlocked.CompareExchange(ref _locked, 1, 0) != 0)
            throw new CheckpointLockedException("The in-memory checkpoint is in use by another run in this process.");
        return new Release(this);
    }

    private sealed class Release(InMemoryCheckpointStore store) : IDisposable
    {
        public void Dispose() => Interlocked.Exchange(ref store._locked, 0);
    }
}
