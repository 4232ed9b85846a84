using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>Where a source starts reading when a checkpoint is new (or a partition was never seen).</summary>
public enum StartingPosition
{
    /// <summary>From the beginning of every partition.</summary>
    Earliest,
    /// <summary>From the end of the data present when the checkpoint is created; only newer data is read.</summary>
    Latest,
}

/// <summary>
/// A replayable source: data split into partitions, each a sequence of positions. The runtime plans each
/// batch as a range [from, to) per partition, logs it, and may ask for exactly the same range again after a
/// crash: <see cref="ReadAsync"/> must then deliver exactly the same records.
/// </summary>
/// <typeparam name="T">The record type.</typeparam>
public interface ISourceConnector<T>
{
    /// <summary>Describes the source for messages, for example its directory or topic.</summary>
    string Description { get; }

    /// <summary>The partitions that exist now, in a stable order. New partitions may appear between calls.</summary>
    Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken);

    /// <summary>The position a new checkpoint starts at in <paramref name="partition"/>, per the source's starting position.</summary>
    Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken);

    /// <summary>The end (exclusive) of the data available now in <paramref name="partition"/>.</summary>
    Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken);

    /// <summary>
    /// The end of a range that starts at <paramref name="from"/> and holds at most <paramref name="maxRecords"/>
    /// records, never beyond <paramref name="available"/>.
    /// </summary>
    Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken);

    /// <summary>Reads exactly the records at positions [<paramref name="from"/>, <paramref name="to"/>) into <paramref name="output"/>.</summary>
    Task ReadAsync(string partition, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken);
}

/// <summary>Receives what a source reads for one partition of one batch.</summary>
/// <typeparam name="T">The record type.</typeparam>
public interface ISourceOutput<in T>
{
    /// <summary>A record at <paramref name="position"/>.</summary>
    void Emit(long position, T record);

    /// <summary>
    /// A record at <paramref name="position"/> that could not be decoded. Depending on the pipeline's
    /// bad-record policy the batch fails with an error naming the source, partition and position, or the
    /// record goes to the dead-letter output with that context.
    /// </summary>
    void Reject(long position, string raw, Exception error);
}

/// <summary>Thrown when a source yields a record it cannot decode and the policy is to fail.</summary>
public sealed class BadRecordException : PipelineDslException
{
    /// <inheritdoc />
    public override bool IsTransient => false;

    /// <summary>Creates the exception.</summary>
    public BadRecordException(string sourceId, string partition, long position, string raw, Exception inner)
        : base($"Source '{sourceId}', partition '{partition}', position {position}: cannot decode the record \"{Truncate(raw)}\": {inner.Message} "
               + "Fix or remove the record, or set BadRecordPolicy = DeadLetter to set such records aside and go on.", inner)
    {
        SourceId = sourceId;
        Partition = partition;
        Position = position;
        Raw = raw;
    }

    /// <summary>The source id.</summary>
    public string SourceId { get; }

    /// <summary>The partition.</summary>
    public string Partition { get; }

    /// <summary>The position of the record.</summary>
    public long Position { get; }

    /// <summary>The raw record.</summary>
    public string Raw { get; }

    private static string Truncate(string raw) => raw.Length <= 200 ? raw : raw[..200] + "…";
}

/// <summary>
/// A source whose partitions end (for example a generator with a fixed event count). Once every partition
/// of such a source has been read to its final position, event-time operators downstream treat its input as
/// complete: their watermark moves to the end of time, so every open window fires and join state is dropped.
/// </summary>
public interface IBoundedSource
{
    /// <summary>The position after the last record of <paramref name="partition"/>, or null when it has no end.</summary>
    long? GetFinalPosition(string partition);
}

/// <summary>
/// Optional for a source whose partitions can end with data that is not yet a complete record (a file's last
/// line without its newline). At the end of a bounded run the runner asks what each partition holds beyond the
/// position it read to, and reports it in <see cref="RunSummary.UnreadTails"/>: such data waits for the rest of
/// its record, and nothing would otherwise say that it was not read.
/// </summary>
public interface IPartialRecordSource
{
    /// <summary>How many bytes (or source units) <paramref name="partition"/> holds after <paramref name="position"/> that are not a complete record yet.</summary>
    Task<long> GetIncompleteTailAsync(string partition, long position, CancellationToken cancellationToken);
}

/// <summary>Data at the end of a partition that a bounded run left unread because it is not a complete record yet.</summary>
/// <param name="SourceId">The source.</param>
/// <param name="Partition">The partition (for files, the file name).</param>
/// <param name="Position">Where the unread data starts.</param>
/// <param name="Length">How much of it there is.</param>
public sealed record UnreadTail(string SourceId, string Partition, long Position, long Length);
