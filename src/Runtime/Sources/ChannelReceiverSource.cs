using System;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>
/// A receiver for records an application produces itself (Spark's receivers, with their write-ahead log always on):
/// <see cref="WriteAsync"/> appends a record to a write-ahead log in a local directory and completes once it is durable
/// (fsynced; many concurrent writes share one fsync). Batches are planned over the log's positions like any replayable
/// source's, so what was acknowledged reaches exactly-once sinks exactly once, across crashes and restarts. Segments are
/// deleted once no recovery can read them again. One partition, <c>"0"</c>.
/// </summary>
/// <remarks>
/// Guarantees: a record whose <see cref="WriteAsync"/> completed survives a crash of the process (and of the machine, as
/// far as its disk honours fsync). A write that failed or was still pending when the process died may or may not be in
/// the log: an application that retries it may see it twice (at-least-once from the producer); one that does not may lose
/// it. A failed write (a full disk) throws <see cref="System.IO.IOException"/> naming the log; nothing acknowledged is lost.
/// </remarks>
/// <typeparam name="T">The record type.</typeparam>
public sealed class ChannelReceiverSource<T> : ReceiverSource<T>
{
    private readonly Func<T, byte[]> _serialize;
    private readonly Func<ReadOnlyMemory<byte>, T> _deserialize;

    /// <param name="log">Where the write-ahead log lives: a directory, or an object store (PipelineDsl.Azure).</param>
    /// <param name="serialize">Turns a record into the bytes the log keeps.</param>
    /// <param name="deserialize">Turns the bytes back into the record; a failure makes the record a bad record (the pipeline's policy decides).</param>
    /// <param name="options">Backlog bound and segment size.</param>
    public ChannelReceiverSource(ReceiverLogStorage log, Func<T, byte[]> serialize, Func<ReadOnlyMemory<byte>, T> deserialize, ReceiverOptions? options = null)
        : base(log, options)
    {
        _serialize = serialize ?? throw new ArgumentNullException(nameof(serialize));
        _deserialize = deserialize ?? throw new ArgumentNullException(nameof(deserialize));
    }

    /// <inheritdoc />
    public override string Description => $"receiver (write-ahead log {LogLocation})";

    /// <summary>
    /// Appends <paramref name="record"/> to the write-ahead log; completes with its position once it is durable. Waits
    /// while the backlog is at <see cref="ReceiverOptions.MaxBacklogRecords"/>.
    /// </summary>
    public Task<long> WriteAsync(T record, CancellationToken cancellationToken = default) => AppendAsync(_serialize(record), cancellationToken);

    private protected override void Emit(long position, ReadOnlyMemory<byte> logged, ISourceOutput<T> output)
    {
        T record;
        try
        {
            record = _deserialize(logged);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            output.Reject(position, Encoding.UTF8.GetString(logged.Span), e);
            return;
        }

        output.Emit(position, record);
    }
}
