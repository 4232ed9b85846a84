using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>Options of a receiver's write-ahead log.</summary>
public sealed class ReceiverOptions
{
    /// <summary>
    /// The most records the log may hold that no committed batch has read yet (default 1,000,000). When processing falls
    /// that far behind, receivers hold back (<see cref="ChannelReceiverSource{T}.WriteAsync"/> waits, the socket receiver
    /// stops reading, the HTTP receiver answers 503): backpressure instead of a log that grows without bound.
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
/// Where a receiver keeps its write-ahead log: <see cref="Directory"/> on a local (or mounted) disk, or
/// <c>AzureBlobReceiverLogStorage</c> (PipelineDsl.Azure) in an object store that a hot standby on another machine reads
/// after it takes over. Keep it with the pipeline's checkpoint: the checkpoint records positions in this log.
/// </summary>
public abstract class ReceiverLogStorage
{
    private protected ReceiverLogStorage()
    {
    }

    /// <summary>A log in a local directory (created if missing): segment files fsynced per group of appends. One process at a time.</summary>
    public static ReceiverLogStorage Directory(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("The receiver needs a directory for its write-ahead log.", nameof(path));
        return new LocalStorage(path);
    }

    /// <summary>A log in a local directory: a receiver's constructor takes the directory's path where it takes a storage.</summary>
    public static implicit operator ReceiverLogStorage(string directory) => Directory(directory);

    /// <summary>Where the log lives, for messages.</summary>
    public abstract string Location { get; }

    /// <summary>Opens the log (reading what it holds) for one receiver.</summary>
    internal abstract WriteAheadLog Open(ReceiverOptions options);

    private sealed class LocalStorage(string path) : ReceiverLogStorage
    {
        public override string Location => System.IO.Path.GetFullPath(path);

        internal override WriteAheadLog Open(ReceiverOptions options) => new LocalWriteAheadLog(path, options.SegmentBytes, options.Durable);
    }
}

/// <summary>
/// What every receiver shares: a write-ahead log in a local directory that records are appended to before they are
/// acknowledged, a bound on the backlog (records logged that no committed batch has read), and the replayable-source side
/// that batches are planned over (one partition, <c>"0"</c>, positions = the log's sequence numbers). Segments are deleted
/// once no recovery can read them again. The receivers differ only in how records arrive and how logged bytes become records.
/// </summary>
/// <typeparam name="T">The record type batches read.</typeparam>
public abstract class ReceiverSource<T> : ISourceConnector<T>, ISourceCommitListener, IConnectorContextAware, IDisposable
{
    private const string Partition = "0";

    private readonly WriteAheadLog _log;
    // Records admitted (durable or being written) and the position the newest committed batch read to: their difference
    // is the backlog that backpressure bounds.
    private long _admitted;
    private long _committed;
    private TaskCompletionSource _progressed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private protected ReceiverSource(ReceiverLogStorage storage, ReceiverOptions? options)
    {
        ArgumentNullException.ThrowIfNull(storage);
        options ??= new ReceiverOptions();
        if (options.MaxBacklogRecords < 1) throw new ArgumentOutOfRangeException(nameof(options), $"ReceiverOptions.MaxBacklogRecords is {options.MaxBacklogRecords}: it must be 1 or more.");
        MaxBacklog = options.MaxBacklogRecords;
        _log = storage.Open(options);
        // Records another process appended (a shared log, before a takeover) count in the backlog like this one's.
        _log.RecordFromElsewhere = (position, logged) =>
        {
            Interlocked.Increment(ref _admitted);
            OnLoggedElsewhere(position, logged);
        };
        _admitted = _log.DurableEnd;
        _committed = _log.Start; // until the first commit says more, everything the log holds counts as backlog
    }

    /// <inheritdoc />
    public abstract string Description { get; }

    /// <summary>Records acknowledged or being written that no committed batch has read yet.</summary>
    public long Backlog => Math.Max(0, Volatile.Read(ref _admitted) - Volatile.Read(ref _committed));

    private protected long MaxBacklog { get; }

    /// <summary>The log's directory.</summary>
    private protected string LogLocation => _log.Location;

    /// <summary>Appends one logged entry; completes with its position once durable. Waits while the backlog is at its bound.</summary>
    private protected async Task<long> AppendAsync(byte[] payload, CancellationToken cancellationToken)
    {
        while (true)
        {
            var progressed = Volatile.Read(ref _progressed).Task;
            if (Interlocked.Increment(ref _admitted) - Volatile.Read(ref _committed) <= MaxBacklog) break;
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

    /// <summary>Waits until the backlog is below its bound (a single producer that keeps its writes in order calls this, then appends without waiting).</summary>
    private protected async Task WaitForRoomAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var progressed = Volatile.Read(ref _progressed).Task;
            if (Backlog < MaxBacklog) return;
            await progressed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Every logged entry in [<paramref name="from"/>, <paramref name="to"/>) with its position.</summary>
    private protected void ReadLogged(long from, long to, Action<long, ReadOnlyMemory<byte>> each) => _log.Read(from, to, each);

    /// <summary>Hands the records of one logged entry to a batch (a bad record to <see cref="ISourceOutput{T}.Reject"/>).</summary>
    private protected abstract void Emit(long position, ReadOnlyMemory<byte> logged, ISourceOutput<T> output);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<string>>(new[] { Partition });

    /// <inheritdoc />
    public Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) => Task.FromResult(_log.Start);

    /// <inheritdoc />
    public async Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken)
    {
        await _log.CatchUpAsync().ConfigureAwait(false); // a shared log: what another process appended counts too
        return _log.DurableEnd;
    }

    /// <summary>A logged entry another process appended, learned while catching up with a shared log.</summary>
    private protected virtual void OnLoggedElsewhere(long position, ReadOnlyMemory<byte> logged)
    {
    }

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
        Task.FromResult(Math.Min(available, from + maxRecords));

    /// <inheritdoc />
    public Task ReadAsync(string partition, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken)
    {
        _log.Read(from, to, (position, bytes) => Emit(position, bytes, output));
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
    public virtual Task OnNoLongerNeededBelowAsync(IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken)
    {
        if (positions.TryGetValue(Partition, out long position)) _log.DeleteBelow(position);
        return Task.CompletedTask;
    }

    /// <summary>From the run that binds it on, the receiver's backlog is the gauge <c>pipelinedsl.receiver.backlog</c>, tagged with the pipeline and source.</summary>
    public void Attach(ConnectorContext context) =>
        PipelineDsl.Execution.PipelineMetrics.TrackReceiver(this, context.PipelineId, context.OperatorId, () => Backlog, MaxBacklog);

    /// <summary>Stops receiving (the socket receiver's reader), before the log closes.</summary>
    private protected virtual void StopReceiving()
    {
    }

    /// <summary>Stops receiving, waits for the writes in flight, and closes the log.</summary>
    public void Dispose()
    {
        StopReceiving();
        PipelineDsl.Execution.PipelineMetrics.UntrackReceiver(this);
        _log.Dispose();
        GC.SuppressFinalize(this);
    }
}
