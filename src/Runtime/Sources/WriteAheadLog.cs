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
/// A receiver's write-ahead log in a local directory: records appended in order, each numbered by its sequence (its
/// position for batch planning), durable before the append's task completes. Appends are group-committed: one writer
/// drains everything queued, writes it, and fsyncs once for the lot, so a thousand concurrent senders cost one fsync,
/// not a thousand. Only durable records are visible to readers (<see cref="DurableEnd"/>), so a batch never plans over a
/// record that a crash could take back.
/// </summary>
/// <remarks>
/// Layout: segment files <c>{first sequence, 19 digits}.wal</c>, each a run of frames <c>[length u32][CRC-32C u32][payload]</c>
/// (big-endian). A segment is closed at <c>segmentBytes</c> and a new one begun. On open, a torn or damaged frame at the end
/// of the newest segment (a crash during a write that was never acknowledged) is cut off; damage anywhere else is an error,
/// never skipped. A failed write (a full disk) fails the appends of its group, cuts the segment back to its durable end,
/// and later appends are tried again: nothing acknowledged is lost.
/// </remarks>
internal sealed class WriteAheadLog : IDisposable
{
    private const int FrameHeader = 8;
    private const string Extension = ".wal";

    private readonly string _directory;
    private readonly long _segmentBytes;
    private readonly bool _durable;
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writer;
    private readonly object _segmentsGate = new();
    // First sequence of every segment, oldest first; the last one is being written.
    private readonly List<long> _segments = new();
    private FileStream _active;
    private long _activeDurableLength;
    private long _durableEnd;
    private long _start;
    private long _syncs;
    // Where the last read ended: sequence, segment and byte offset, so that consecutive batches do not rescan.
    private (long Sequence, long Segment, long Offset) _readCursor = (-1, -1, 0);

    private sealed record Pending(ReadOnlyMemory<byte> Payload, TaskCompletionSource<long> Done);

    public WriteAheadLog(string directory, long segmentBytes = 64L << 20, bool durable = true)
    {
        _durable = durable;
        if (segmentBytes < 1024) throw new ArgumentOutOfRangeException(nameof(segmentBytes), "A segment must hold at least 1 KiB.");
        _directory = Path.GetFullPath(directory);
        _segmentBytes = segmentBytes;
        Directory.CreateDirectory(_directory);
        foreach (string file in Directory.GetFiles(_directory, "*" + Extension))
        {
            if (long.TryParse(Path.GetFileNameWithoutExtension(file), NumberStyles.None, CultureInfo.InvariantCulture, out long first)) _segments.Add(first);
        }

        _segments.Sort();
        if (_segments.Count == 0)
        {
            _segments.Add(0);
            _active = OpenSegment(0, create: true);
        }
        else
        {
            // Every closed segment must be whole; the newest may end in a frame a crash cut short, which was never acknowledged.
            for (int i = 0; i < _segments.Count - 1; i++)
            {
                var (count, _, damage) = Scan(_segments[i]);
                if (damage is not null || _segments[i] + count != _segments[i + 1])
                    throw new IOException($"The write-ahead log segment '{SegmentPath(_segments[i])}' is damaged ({damage ?? $"it holds {count} records where {_segments[i + 1] - _segments[i]} were written"}): it holds acknowledged records and cannot be trusted. Restore it from a backup, or move the directory aside to start an empty log.");
            }

            long last = _segments[^1];
            var (records, validLength, _) = Scan(last);
            _active = OpenSegment(last, create: false);
            if (_active.Length != validLength)
            {
                _active.SetLength(validLength); // the torn tail of a write that never completed
                _active.Flush(flushToDisk: true);
            }

            _active.Position = validLength;
            _durableEnd = last + records;
        }

        _activeDurableLength = _active.Length;
        _start = _segments[0];
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>The directory the log lives in.</summary>
    public string Location => _directory;

    /// <summary>The sequence after the last durable record: records below it may be read.</summary>
    public long DurableEnd => Volatile.Read(ref _durableEnd);

    /// <summary>How many group writes (each one fsync) the log made since it was opened.</summary>
    public long Syncs => Volatile.Read(ref _syncs);

    /// <summary>The first sequence the log still holds (older segments were deleted).</summary>
    public long Start => Volatile.Read(ref _start);

    /// <summary>Appends a record; completes with its sequence once it is durable. Fails when the write failed (then the record is not in the log).</summary>
    public Task<long> AppendAsync(ReadOnlyMemory<byte> payload)
    {
        var done = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(new Pending(payload, done))) done.SetException(new ObjectDisposedException(nameof(WriteAheadLog), "The write-ahead log is closed."));
        return done.Task;
    }

    private async Task WriteLoopAsync()
    {
        var group = new List<Pending>();
        // The group's frames, written with one call: the segment's stream has no buffer of its own, so a failed write
        // leaves nothing behind to be written later with the next group.
        var frames = new System.Buffers.ArrayBufferWriter<byte>(1 << 16);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            while (group.Count < 65_536 && _queue.Reader.TryRead(out var pending)) group.Add(pending);
            if (group.Count == 0) continue;
            try
            {
                frames.ResetWrittenCount();
                foreach (var pending in group)
                {
                    var header = frames.GetSpan(FrameHeader);
                    BinaryPrimitives.WriteUInt32BigEndian(header, (uint)pending.Payload.Length);
                    BinaryPrimitives.WriteUInt32BigEndian(header[4..], CheckpointFile.Crc32C(pending.Payload.Span));
                    frames.Advance(FrameHeader);
                    pending.Payload.Span.CopyTo(frames.GetSpan(pending.Payload.Length));
                    frames.Advance(pending.Payload.Length);
                }

                _active.Write(frames.WrittenSpan);
                if (_durable) _active.Flush(flushToDisk: true); // one fsync for the whole group
                Interlocked.Increment(ref _syncs);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Nothing of this group was acknowledged: cut the segment back to what was, and tell each sender.
                var failure = new IOException($"The write-ahead log '{_directory}' cannot take records: {LocalDirectoryCheckpointStore.DescribeIoFailure(e, _active.Name)} Nothing acknowledged is lost; send the refused records again.", e);
                try
                {
                    _active.SetLength(_activeDurableLength);
                    _active.Position = _activeDurableLength;
                }
                catch (Exception cut) when (cut is IOException or UnauthorizedAccessException)
                {
                    // The next successful write's fsync covers the cut; until then readers see only DurableEnd.
                }

                foreach (var pending in group) pending.Done.TrySetException(failure);
                continue;
            }

            long first = _durableEnd;
            _activeDurableLength = _active.Position;
            Volatile.Write(ref _durableEnd, first + group.Count);
            for (int i = 0; i < group.Count; i++) group[i].Done.TrySetResult(first + i);
            if (_activeDurableLength >= _segmentBytes) Roll();
        }
    }

    private void Roll()
    {
        long next = _durableEnd;
        FileStream segment;
        try
        {
            segment = OpenSegment(next, create: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A full disk: keep writing to the current segment (its writes fail on their own if they must) and roll later.
            return;
        }

        lock (_segmentsGate)
        {
            _active.Dispose();
            _active = segment;
            _segments.Add(next);
        }

        _activeDurableLength = 0;
    }

    /// <summary>Reads the records [<paramref name="from"/>, <paramref name="to"/>), which must be durable and not deleted.</summary>
    public void Read(long from, long to, Action<long, ReadOnlyMemory<byte>> each)
    {
        if (from < Start || to > DurableEnd || from > to)
            throw new InvalidOperationException($"The write-ahead log '{_directory}' holds records [{Start}, {DurableEnd}); [{from}, {to}) was asked for.");
        long sequence = from;
        while (sequence < to)
        {
            long segment;
            lock (_segmentsGate) segment = _segments.Last(s => s <= sequence);
            var cursor = _readCursor;
            long offset = cursor.Segment == segment && cursor.Sequence <= sequence ? cursor.Offset : 0;
            long at = cursor.Segment == segment && cursor.Sequence <= sequence ? cursor.Sequence : segment;
            using var stream = new FileStream(SegmentPath(segment), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);
            stream.Position = offset;
            var header = new byte[FrameHeader];
            while (sequence < to)
            {
                if (stream.Position >= stream.Length) break; // the rest is in the next segment
                stream.ReadExactly(header);
                int length = (int)BinaryPrimitives.ReadUInt32BigEndian(header);
                var payload = new byte[length];
                stream.ReadExactly(payload);
                if (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) != CheckpointFile.Crc32C(payload))
                    throw new IOException($"The write-ahead log segment '{SegmentPath(segment)}' is damaged at record {at}: its checksum does not match. It holds acknowledged records and cannot be trusted.");
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

        foreach (long segment in doomed) File.Delete(SegmentPath(segment));
    }

    /// <summary>How many whole frames a segment holds, where they end, and what is wrong after them (null: nothing).</summary>
    private (long Records, long ValidLength, string? Damage) Scan(long segment)
    {
        using var stream = new FileStream(SegmentPath(segment), FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        var header = new byte[FrameHeader];
        long records = 0, valid = 0;
        while (true)
        {
            int got = stream.ReadAtLeast(header, FrameHeader, throwOnEndOfStream: false);
            if (got == 0) return (records, valid, null);
            if (got < FrameHeader) return (records, valid, $"a frame header cut short at byte {valid}");
            long length = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (length > stream.Length - stream.Position) return (records, valid, $"a record cut short at byte {valid}");
            var payload = new byte[length];
            stream.ReadExactly(payload);
            if (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) != CheckpointFile.Crc32C(payload)) return (records, valid, $"a checksum mismatch at byte {valid}");
            records++;
            valid = stream.Position;
        }
    }

    private string SegmentPath(long first) => Path.Combine(_directory, first.ToString("D19", CultureInfo.InvariantCulture) + Extension);

    private FileStream OpenSegment(long first, bool create)
    {
        var stream = new FileStream(SegmentPath(first), create ? FileMode.CreateNew : FileMode.Open, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete, bufferSize: 0);
        if (create) DurableFile.FsyncDirectory(_directory); // the new segment's name survives a crash
        return stream;
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
            lock (_segmentsGate) _active.Dispose();
        }
    }
}
