using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>Options of a receiver's write-ahead log.</summary>
public sealed class ReceiverOptions
{
    /// <summary>
    /// The most records the log may hold that no committed batch has read yet (default 1,000,000). When processing falls
    /// that far behind, <see cref="ChannelReceiverSource{T}.WriteAsync"/> waits until batches catch up: backpressure
    /// instead of a log that grows without bound.
    /// </summary>
    public long MaxBacklogRecords { get; init; } = 1_000_000;

    /// <summary>The size at which a segment file of the log is closed and a new one begun (default 64 MiB).</summary>
    public long SegmentBytes { get; init; } = 64L << 20;

    /// <summary>
    /// Whether a write is acknowledged only once fsynced (default true). False acknowledges once the operating system has
    /// the bytes: a crash of the process loses nothing, a crash of the machine may lose what was acknowledged. For
    /// measuring what durability costs, or for data that can be lost.
    /// </summary>
    public bool Durable { get; init; } = true;
}

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
public sealed class ChannelReceiverSource<T> : ISourceConnector<T>, ISourceCommitListener, IDisposable
{
    private const string Partition = "0";

    private readonly WriteAheadLog _log;
    private readonly Func<T, byte[]> _serialize;
    private readonly Func<ReadOnlyMemory<byte>, T> _deserialize;
    private readonly long _maxBacklog;
    // Records admitted (durable or being written) and the position the newest committed batch read to: their difference
    // is the backlog that backpressure bounds.
    private long _admitted;
    private long _committed;
    private TaskCompletionSource _progressed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="walDirectory">The write-ahead log's directory: on durable storage, one per receiver, kept with the checkpoint.</param>
    /// <param name="serialize">Turns a record into the bytes the log keeps.</param>
    /// <param name="deserialize">Turns the bytes back into the record; a failure makes the record a bad record (the pipeline's policy decides).</param>
    /// <param name="options">Backlog bound and segment size.</param>
    public ChannelReceiverSource(string walDirectory, Func<T, byte[]> serialize, Func<ReadOnlyMemory<byte>, T> deserialize, ReceiverOptions? options = null)
    {
        if (string.IsNullOrWhiteSpace(walDirectory)) throw new ArgumentException("The receiver needs a directory for its write-ahead log.", nameof(walDirectory));
        options ??= new ReceiverOptions();
        if (options.MaxBacklogRecords < 1) throw new ArgumentOutOfRangeException(nameof(options), $"ReceiverOptions.MaxBacklogRecords is {options.MaxBacklogRecords}: it must be 1 or more.");
        _serialize = serialize ?? throw new ArgumentNullException(nameof(serialize));
        _deserialize = deserialize ?? throw new ArgumentNullException(nameof(deserialize));
        _maxBacklog = options.MaxBacklogRecords;
        _log = new WriteAheadLog(walDirectory, options.SegmentBytes, options.Durable);
        _admitted = _log.DurableEnd;
        _committed = _log.Start; // until the first commit says more, everything the log holds counts as backlog
    }

    /// <inheritdoc />
    public string Description => $"receiver (write-ahead log {_log.Location})";

    /// <summary>Records acknowledged or being written that no committed batch has read yet.</summary>
    public long Backlog => Math.Max(0, Volatile.Read(ref _admitted) - Volatile.Read(ref _committed));

    /// <summary>
    /// Appends <paramref name="record"/> to the write-ahead log; completes with its position once it is durable. Waits
    /// while the backlog is at <see cref="ReceiverOptions.MaxBacklogRecords"/>.
    /// </summary>
    public async Task<long> WriteAsync(T record, CancellationToken cancellationToken = default)
    {
        var payload = _serialize(record);
        while (true)
        {
            var progressed = Volatile.Read(ref _progressed).Task;
            if (Interlocked.Increment(ref _admitted) - Volatile.Read(ref _committed) <= _maxBacklog) break;
            Interlocked.Decrement(ref _admitted);
            await progressed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        try
        {
            return await _log.AppendAsync(payload).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _admitted);
            throw;
        }
    }

    /// <summary>Waits until the backlog is below its bound (a single producer that keeps its writes in order calls this, then writes without waiting).</summary>
    internal async Task WaitForRoomAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var progressed = Volatile.Read(ref _progressed).Task;
            if (Backlog < _maxBacklog) return;
            await progressed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The log's directory.</summary>
    internal string LogLocation => _log.Location;

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<string>>(new[] { Partition });

    /// <inheritdoc />
    public Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) => Task.FromResult(_log.Start);

    /// <inheritdoc />
    public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken) => Task.FromResult(_log.DurableEnd);

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
        Task.FromResult(Math.Min(available, from + maxRecords));

    /// <inheritdoc />
    public Task ReadAsync(string partition, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken)
    {
        _log.Read(from, to, (position, bytes) =>
        {
            T record;
            try
            {
                record = _deserialize(bytes);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                output.Reject(position, Encoding.UTF8.GetString(bytes.Span), e);
                return;
            }

            output.Emit(position, record);
        });
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task OnBatchCommittedAsync(long batchId, IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken)
    {
        if (positions.TryGetValue(Partition, out long committed))
        {
            Volatile.Write(ref _committed, committed);
            Interlocked.Exchange(ref _progressed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task OnNoLongerNeededBelowAsync(IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken)
    {
        if (positions.TryGetValue(Partition, out long position)) _log.DeleteBelow(position);
        return Task.CompletedTask;
    }

    /// <summary>Waits for the writes in flight and closes the log.</summary>
    public void Dispose() => _log.Dispose();
}
