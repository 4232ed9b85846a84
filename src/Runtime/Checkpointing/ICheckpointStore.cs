using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// Where a pipeline keeps its checkpoint: named blobs written atomically (a reader sees the whole old
/// content or the whole new content, never a mix) and durably (written through to the device before the
/// call returns), plus an exclusive lock so that one process at a time owns the checkpoint.
/// Names use '/' as separator, for example <c>offsets/0000000000000000042</c>.
/// </summary>
public interface ICheckpointStore
{
    /// <summary>A human-readable location for messages, for example a directory path.</summary>
    string Location { get; }

    /// <summary>
    /// Writes <paramref name="content"/> under <paramref name="name"/> atomically, replacing any old content.
    /// When <paramref name="durable"/> is true the content is on stable storage when the call returns;
    /// otherwise it survives a crash of the process but may be lost with the machine's power.
    /// </summary>
    Task WriteAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken);

    /// <summary>
    /// Writes <paramref name="content"/> under <paramref name="name"/> only if nothing is stored there yet, with the
    /// guarantees of <see cref="WriteAsync"/>; returns false, writing nothing, when something is. The runtime
    /// writes the offsets and commit of each batch this way, so that a process that lost the checkpoint to another
    /// (a "zombie" after a pause) cannot replace what the new holder wrote. The built-in stores make the check and
    /// the write one atomic step (of two writers of a name, exactly one succeeds); this default implementation,
    /// for stores written before it existed, reads and then writes, which is not atomic.
    /// </summary>
    async Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        if (await ReadAsync(name, cancellationToken).ConfigureAwait(false) is not null) return false;
        await WriteAsync(name, content, durable, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Confirms that this process still holds the lock it took (<see cref="AcquireLock"/>), before the runtime
    /// delivers a batch to its sinks; throws <see cref="CheckpointFencedException"/> when another process took the
    /// checkpoint over meanwhile, so that a process woken from a pause writes no output. The default does nothing:
    /// right for a lock that cannot be lost while its process lives (a local directory's flock).
    /// </summary>
    Task ConfirmLockAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Who holds, or last held, the checkpoint's lock, as the store records it (for dashboards and tools; never used to
    /// decide anything); null when the store records nothing. The default records nothing.
    /// </summary>
    Task<string?> DescribeLockHolderAsync(CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    /// <summary>Reads the content under <paramref name="name"/>, or null when there is none.</summary>
    Task<byte[]?> ReadAsync(string name, CancellationToken cancellationToken);

    /// <summary>The names directly under <paramref name="folder"/> (for example <c>offsets</c>), in ordinal order.</summary>
    Task<IReadOnlyList<string>> ListAsync(string folder, CancellationToken cancellationToken);

    /// <summary>Deletes <paramref name="name"/> if it exists.</summary>
    Task DeleteAsync(string name, CancellationToken cancellationToken);

    /// <summary>
    /// Takes the exclusive lock on the checkpoint, or throws <see cref="CheckpointLockedException"/> when
    /// another process holds it. Dispose the result to release it; a crashed process releases it too.
    /// </summary>
    IDisposable AcquireLock(string owner);
}

/// <summary>Thrown when another process already runs a pipeline on the same checkpoint.</summary>
public sealed class CheckpointLockedException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointLockedException(string message, Exception? inner = null) : base(message, inner) { }

    /// <inheritdoc />
    public override bool IsTransient => true;
}

/// <summary>
/// Thrown when the checkpoint store did not answer for longer than its outage limit. Nothing accepted is
/// lost: the batch in flight is not committed and runs again from its logged range when the pipeline
/// starts again with the store back.
/// </summary>
public sealed class CheckpointStoreUnavailableException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointStoreUnavailableException(string message, Exception? inner = null) : base(message, inner) { }

    /// <inheritdoc />
    public override bool IsTransient => true;
}

/// <summary>
/// Thrown when this process no longer holds the checkpoint's lock (its lease expired or was taken by
/// another instance, for example after a long pause): it must not write anything more, and stops.
/// </summary>
public sealed class CheckpointFencedException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointFencedException(string message, Exception? inner = null) : base(message, inner) { }

    /// <inheritdoc />
    public override bool IsTransient => true;
}

/// <summary>Thrown when a checkpoint cannot be used by this pipeline (another pipeline's, or unreadable beyond recovery).</summary>
public sealed class CheckpointMismatchException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointMismatchException(string message, Exception? inner = null) : base(message, inner) { }

    /// <inheritdoc />
    public override bool IsTransient => false;
}

/// <summary>Thrown when a checkpoint file fails its checksum or does not decode; the runtime falls back to older files.</summary>
public sealed class CheckpointCorruptException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointCorruptException(string message, Exception? inner = null) : base(message, inner) { }

    /// <inheritdoc />
    public override bool IsTransient => false;
}
