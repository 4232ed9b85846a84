using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;

namespace PipelineDsl.Sources;

/// <summary>
/// A receiver's write-ahead log: records appended in order, each numbered by its sequence (its position for batch
/// planning), durable before the append's task completes. Appends are group-committed: one writer drains everything
/// queued, writes it, and makes it durable once for the lot, so a thousand concurrent senders cost one fsync (or one
/// object-store request), not a thousand. Only durable records are visible to readers (<see cref="DurableEnd"/>), so a
/// batch never plans over a record that a crash could take back. This class owns the format and the sequence
/// bookkeeping; a medium (<see cref="LocalWriteAheadLog"/>, the Azure one) only stores segments.
/// </summary>
/// <remarks>
/// Format (version 1, read forever): segments named <c>{first sequence, 19 digits}.wal</c>, each a run of frames
/// <c>[length u32][CRC-32C u32][payload]</c> (big-endian). A segment is closed once it reaches <c>segmentBytes</c> and
/// the next one is named by the sequence after its last record. On open, every closed segment must be whole; the newest
/// may end in a frame a crash cut short (never acknowledged), which the medium cuts off or refuses. Damage anywhere else
/// is an error, never skipped.
/// </remarks>
internal abstract class WriteAheadLog : IDisposable
{
    protected const int FrameHeader = 8;
    protected const string Extension = ".wal";

    private readonly long _segmentBytes;
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private Task _writer = Task.CompletedTask;
    private readonly object _segmentsGate = new();
    // Held while the log's end moves: by the writer for a group, and by a catch-up with another process's appends.
    private readonly SemaphoreSlim _endGate = new(1, 1);
    // First sequence of every segment, oldest first; the last one is being written.
    private readonly List<long> _segments = new();
    private long _activeLength;
    private long _durableEnd;
    private long _start;
    private long _syncs;
    // Where the last read ended: sequence, segment and byte offset, so that consecutive batches do not rescan.
    private (long Sequence, long Segment, long Offset) _readCursor = (-1, -1, 0);

    private sealed record Pending(ReadOnlyMemory<byte> Payload, TaskCompletionSource<long> Done);

    protected WriteAheadLog(long segmentBytes)
    {
        if (segmentBytes < 1024) throw new ArgumentOutOfRangeException(nameof(segmentBytes), "A segment must hold at least 1 KiB.");
        _segmentBytes = segmentBytes;
    }

    /// <summary>Where the log lives (a directory, or a container and prefix).</summary>
    public abstract string Location { get; }

    /// <summary>The sequence after the last durable record: records below it may be read.</summary>
    public long DurableEnd => Volatile.Read(ref _durableEnd);

    /// <summary>How many group writes the log made since it was opened.</summary>
    public long Syncs => Volatile.Read(ref _syncs);

    /// <summary>The first sequence the log still holds (older segments were deleted).</summary>
    public long Start => Volatile.Read(ref _start);

    /// <summary>Records another process appended that this one learned of while catching up: their sequence and payload.</summary>
    public Action<long, ReadOnlyMemory<byte>>? RecordFromElsewhere { get; set; }

    /// <summary>The most bytes of frames one write may carry (the object store's limit per append).</summary>
    protected virtual int MaxGroupBytes => int.MaxValue;

    /// <summary>The first sequences of the segments the medium holds, in any order.</summary>
    protected abstract IEnumerable<long> ListSegments();

    /// <summary>A readable, seekable stream over a segment; its length is at least what was durable when it was opened.</summary>
    protected abstract Stream OpenRead(long first);

    /// <summary>Creates an empty segment; false when it exists already (another process created it).</summary>
    protected abstract Task<bool> CreateSegmentAsync(long first);

    /// <summary>
    /// Makes the newest segment ready for appends at <paramref name="validLength"/>, where its last whole frame ends;
    /// <paramref name="length"/> is its length now (longer: a torn tail, which the medium cuts off or refuses).
    /// </summary>
    protected abstract void OpenActive(long first, long validLength, long length);

    /// <summary>
    /// Appends <paramref name="frames"/> to segment <paramref name="first"/>, which is <paramref name="length"/> bytes long,
    /// durable on return. False: the segment is no longer that long (another process appended; nothing was written).
    /// Throws <see cref="IOException"/> when the write failed; the segment is then as it was.
    /// </summary>
    protected abstract Task<bool> AppendToSegmentAsync(long first, long length, ReadOnlyMemory<byte> frames);

    /// <summary>Deletes a segment no reader needs again.</summary>
    protected abstract void DeleteSegment(long first);

    /// <summary>Releases what the medium holds open.</summary>
    protected abstract void CloseMedium();

    /// <summary>Whether another process may append to this medium (then the log catches up with it when asked).</summary>
    protected virtual bool Shared => false;

    protected static string SegmentName(long first) => first.ToString("D19", CultureInfo.InvariantCulture) + Extension;

    protected static bool TryParseSegmentName(string name, out long first) =>
        long.TryParse(name.EndsWith(Extension, StringComparison.Ordinal) ? name[..^Extension.Length] : "x", NumberStyles.None, CultureInfo.InvariantCulture, out first);

    /// <summary>Reads the medium (every closed segment must be whole) and starts the writer. Derived constructors call it last.</summary>
    protected async Task OpenAsync()
    {
        _segments.AddRange(ListSegments().OrderBy(s => s));
        if (_segments.Count == 0)
        {
            if (!await CreateSegmentAsync(0).ConfigureAwait(false)) throw new IOException($"The write-ahead log '{Location}' was created by another process while this one opened it: open it again.");
            _segments.Add(0);
            OpenActive(0, 0, 0);
        }
        else
        {
            for (int i = 0; i < _segments.Count - 1; i++)
            {
                var (count, _, _, damage) = Scan(_segments[i]);
                if (damage is not null || _segments[i] + count != _segments[i + 1])
                    throw new IOException($"The write-ahead log segment '{Describe(_segments[i])}' is damaged ({damage ?? $"it holds {count} records where {_segments[i + 1] - _segments[i]} were written"}): it holds acknowledged records and cannot be trusted. Restore it from a backup, or move the log aside to start an empty one.");
            }

            long last = _segments[^1];
            var (records, validLength, length, _) = Scan(last);
            OpenActive(last, validLength, length);
            _activeLength = validLength;
            _durableEnd = last + records;
        }

        _start = _segments[0];
        _writer = Task.Run(WriteLoopAsync);
    }

    private string Describe(long segment) => Location.TrimEnd('/') + "/" + SegmentName(segment);

    /// <summary>Appends a record; completes with its sequence once it is durable. Fails when the write failed (then the record is not in the log).</summary>
    public Task<long> AppendAsync(ReadOnlyMemory<byte> payload)
    {
        var done = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (payload.Length + FrameHeader > MaxGroupBytes)
            done.SetException(new IOException($"A record of {payload.Length} bytes does not fit the write-ahead log '{Location}', which takes records of at most {MaxGroupBytes - FrameHeader} bytes: send it in smaller parts."));
        else if (!_queue.Writer.TryWrite(new Pending(payload, done)))
            done.SetException(new ObjectDisposedException(nameof(WriteAheadLog), "The write-ahead log is closed."));
        return done.Task;
    }

    private async Task WriteLoopAsync()
    {
        var group = new List<Pending>();
        // The group's frames, written with one call, so that a failed write leaves nothing behind to be written later.
        var frames = new System.Buffers.ArrayBufferWriter<byte>(1 << 16);
        Pending? carried = null; // the record that did not fit the last group
        while (carried is not null || await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            frames.ResetWrittenCount();
            while (group.Count < 65_536)
            {
                if (carried is null && !_queue.Reader.TryRead(out carried)) break;
                if (group.Count > 0 && frames.WrittenCount + FrameHeader + carried.Payload.Length > MaxGroupBytes) break;
                var header = frames.GetSpan(FrameHeader);
                BinaryPrimitives.WriteUInt32BigEndian(header, (uint)carried.Payload.Length);
                BinaryPrimitives.WriteUInt32BigEndian(header[4..], CheckpointFile.Crc32C(carried.Payload.Span));
                frames.Advance(FrameHeader);
                carried.Payload.Span.CopyTo(frames.GetSpan(carried.Payload.Length));
                frames.Advance(carried.Payload.Length);
                group.Add(carried);
                carried = null;
            }

            if (group.Count == 0) continue;
            long first;
            await _endGate.WaitAsync().ConfigureAwait(false);
            try
            {
                while (true)
                {
                    if (_activeLength >= _segmentBytes)
                {
                    try
                    {
                        await RollAsync().ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        // This group is durable whatever the roll did; the next group tries the roll again and fails if it must.
                    }
                }
                    if (await AppendToSegmentAsync(ActiveSegment, _activeLength, frames.WrittenMemory).ConfigureAwait(false)) break;
                    await CatchUpLockedAsync().ConfigureAwait(false); // another process appended: learn its records, then append after them
                }

                Interlocked.Increment(ref _syncs);
                first = _durableEnd;
                _activeLength += frames.WrittenCount;
                Volatile.Write(ref _durableEnd, first + group.Count);
                // A full segment is closed at once, so that retention can delete it as soon as no one needs it
                // (a roll that fails, on a full disk, is tried again before the next group).
                if (_activeLength >= _segmentBytes)
                {
                    try
                    {
                        await RollAsync().ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        // This group is durable whatever the roll did; the next group tries the roll again and fails if it must.
                    }
                }
            }
            catch (Exception e)
            {
                // Nothing of this group was acknowledged: tell each sender (whatever went wrong, the writer goes on, so
                // that no later append waits forever on a writer that died).
                var failure = e as IOException ?? new IOException($"The write-ahead log '{Location}' could not take records: {e.Message} Nothing acknowledged is lost; send the refused records again.", e);
                foreach (var pending in group) pending.Done.TrySetException(failure);
                continue;
            }
            finally
            {
                _endGate.Release();
            }

            for (int i = 0; i < group.Count; i++) group[i].Done.TrySetResult(first + i);
        }
    }

    private long ActiveSegment
    {
        get
        {
            lock (_segmentsGate) return _segments[^1];
        }
    }

    /// <summary>Begins the segment after the full active one (or adopts it, when another process began it already).</summary>
    private async Task RollAsync()
    {
        long next = _durableEnd;
        try
        {
            await CreateSegmentAsync(next).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A full disk: keep writing to the current segment (its writes fail on their own if they must) and roll later.
            return;
        }

        lock (_segmentsGate) _segments.Add(next);
        OpenActive(next, 0, 0);
        _activeLength = 0;
    }

    /// <summary>
    /// Learns what other processes appended to a shared log since this one last looked (a hot standby that took over, or
    /// an older process still running): its end moves past their records. Batches plan up to the end this leaves.
    /// </summary>
    public async Task CatchUpAsync()
    {
        if (!Shared) return;
        await _endGate.WaitAsync().ConfigureAwait(false);
        try
        {
            await CatchUpLockedAsync().ConfigureAwait(false);
        }
        finally
        {
            _endGate.Release();
        }
    }

    private async Task CatchUpLockedAsync()
    {
        while (true)
        {
            long active = ActiveSegment;
            using (var stream = OpenRead(active))
            {
                stream.Position = _activeLength;
                var header = new byte[FrameHeader];
                while (stream.Position < stream.Length)
                {
                    stream.ReadExactly(header);
                    var payload = new byte[BinaryPrimitives.ReadUInt32BigEndian(header)];
                    stream.ReadExactly(payload);
                    if (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) != CheckpointFile.Crc32C(payload))
                        throw new IOException($"The write-ahead log segment '{Describe(active)}' is damaged at byte {_activeLength}: a record another process appended does not match its checksum.");
                    RecordFromElsewhere?.Invoke(_durableEnd, payload);
                    _activeLength = stream.Position;
                    Volatile.Write(ref _durableEnd, _durableEnd + 1);
                }
            }

            // The other process may have begun the next segment: it is named by the sequence after this one's last record.
            if (_activeLength < _segmentBytes || !ListSegments().Contains(_durableEnd)) return;
            lock (_segmentsGate) _segments.Add(_durableEnd);
            OpenActive(_durableEnd, 0, 0);
            _activeLength = 0;
        }
    }

    /// <summary>Reads the records [<paramref name="from"/>, <paramref name="to"/>), which must be durable and not deleted.</summary>
    public void Read(long from, long to, Action<long, ReadOnlyMemory<byte>> each)
    {
        if (from < Start || to > DurableEnd || from > to)
            throw new InvalidOperationException($"The write-ahead log '{Location}' holds records [{Start}, {DurableEnd}); [{from}, {to}) was asked for.");
        long sequence = from;
        while (sequence < to)
        {
            long segment;
            lock (_segmentsGate) segment = _segments.Last(s => s <= sequence);
            var cursor = _readCursor;
            bool resume = cursor.Segment == segment && cursor.Sequence <= sequence;
            long at = resume ? cursor.Sequence : segment;
            using var stream = OpenRead(segment);
            stream.Position = resume ? cursor.Offset : 0;
            var header = new byte[FrameHeader];
            while (sequence < to)
            {
                if (stream.Position >= stream.Length) break; // the rest is in the next segment
                stream.ReadExactly(header);
                int length = (int)BinaryPrimitives.ReadUInt32BigEndian(header);
                var payload = new byte[length];
                stream.ReadExactly(payload);
                if (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) != CheckpointFile.Crc32C(payload))
                    throw new IOException($"The write-ahead log segment '{Describe(segment)}' is damaged at record {at}: its checksum does not match. It holds acknowledged records and cannot be trusted.");
                if (at == sequence)
                {
                    each(sequence, payload);
                    sequence++;
                }

                at++;
            }

            _readCursor = (at, segment, stream.Position);
        }
    }

    /// <summary>Deletes every closed segment whose records all lie below <paramref name="position"/> (they will never be read again).</summary>
    public void DeleteBelow(long position)
    {
        List<long> doomed;
        lock (_segmentsGate)
        {
            doomed = new List<long>();
            // A segment's records end where the next segment begins; the active segment is never deleted.
            for (int i = 0; i < _segments.Count - 1 && _segments[i + 1] <= position; i++) doomed.Add(_segments[i]);
            if (doomed.Count == 0) return;
            _segments.RemoveRange(0, doomed.Count);
            Volatile.Write(ref _start, _segments[0]);
        }

        foreach (long segment in doomed) DeleteSegment(segment);
    }

    /// <summary>How many whole frames a segment holds, where they end, its length, and what is wrong after them (null: nothing).</summary>
    private (long Records, long ValidLength, long Length, string? Damage) Scan(long segment)
    {
        using var stream = OpenRead(segment);
        long total = stream.Length;
        var header = new byte[FrameHeader];
        long records = 0, valid = 0;
        while (true)
        {
            int got = stream.ReadAtLeast(header, FrameHeader, throwOnEndOfStream: false);
            if (got == 0) return (records, valid, total, null);
            if (got < FrameHeader) return (records, valid, total, $"a frame header cut short at byte {valid}");
            long length = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (length > total - stream.Position) return (records, valid, total, $"a record cut short at byte {valid}");
            var payload = new byte[length];
            stream.ReadExactly(payload);
            if (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) != CheckpointFile.Crc32C(payload)) return (records, valid, total, $"a checksum mismatch at byte {valid}");
            records++;
            valid = stream.Position;
        }
    }

    /// <summary>Stops taking appends, writes what is queued, and closes the log.</summary>
    public void Dispose()
    {
        _queue.Writer.TryComplete();
        try
        {
            _writer.GetAwaiter().GetResult();
        }
        finally
        {
            CloseMedium();
            _endGate.Dispose();
        }
    }
}

/// <summary>
/// The write-ahead log in a local directory: each segment a file, appended without a buffer of its own and fsynced once
/// per group (unless not durable); a failed write (a full disk) cuts the segment back to its durable end, so nothing
/// half-written is left to be mistaken for records, and later appends are tried again: nothing acknowledged is lost.
/// One process at a time writes a directory.
/// </summary>
internal sealed class LocalWriteAheadLog : WriteAheadLog
{
    private readonly string _directory;
    private readonly bool _durable;
    private FileStream? _active;

    public LocalWriteAheadLog(string directory, long segmentBytes = 64L << 20, bool durable = true)
        : base(segmentBytes)
    {
        _durable = durable;
        _directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(_directory);
        OpenAsync().GetAwaiter().GetResult();
    }

    public override string Location => _directory;

    protected override IEnumerable<long> ListSegments() =>
        Directory.GetFiles(_directory, "*" + Extension).Select(Path.GetFileName).Select(n => TryParseSegmentName(n!, out long first) ? first : -1).Where(f => f >= 0);

    protected override Stream OpenRead(long first) =>
        new FileStream(SegmentPath(first), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);

    protected override Task<bool> CreateSegmentAsync(long first)
    {
        // An empty file of that name is one an earlier attempt created before it failed (a full disk): it is taken as is.
        using (var created = new FileStream(SegmentPath(first), FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read | FileShare.Delete))
        {
            if (created.Length > 0)
                throw new IOException($"The write-ahead log segment '{SegmentPath(first)}' already holds records: another process writes to '{_directory}'. One process at a time may use a local log.");
        }

        DurableFile.FsyncDirectory(_directory); // the new segment's name survives a crash
        return Task.FromResult(true);
    }

    protected override void OpenActive(long first, long validLength, long length)
    {
        var stream = new FileStream(SegmentPath(first), FileMode.Open, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete, bufferSize: 0);
        if (stream.Length != validLength)
        {
            stream.SetLength(validLength); // the torn tail of a write that never completed
            stream.Flush(flushToDisk: true);
        }

        stream.Position = validLength;
        _active?.Dispose();
        _active = stream;
    }

    protected override Task<bool> AppendToSegmentAsync(long first, long length, ReadOnlyMemory<byte> frames)
    {
        var active = _active!;
        try
        {
            active.Write(frames.Span);
            if (_durable) active.Flush(flushToDisk: true); // one fsync for the whole group
            return Task.FromResult(true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                active.SetLength(length);
                active.Position = length;
            }
            catch (Exception cut) when (cut is IOException or UnauthorizedAccessException)
            {
                // The next successful write's fsync covers the cut; until then readers see only DurableEnd.
            }

            throw new IOException($"The write-ahead log '{_directory}' cannot take records: {LocalDirectoryCheckpointStore.DescribeIoFailure(e, active.Name, "and the log takes records again")} Nothing acknowledged is lost; send the refused records again.", e);
        }
    }

    protected override void DeleteSegment(long first) => File.Delete(SegmentPath(first));

    protected override void CloseMedium() => _active?.Dispose();

    private string SegmentPath(long first) => Path.Combine(_directory, SegmentName(first));
}
