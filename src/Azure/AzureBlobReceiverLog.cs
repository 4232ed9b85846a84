using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using PipelineDsl.Sources;

namespace PipelineDsl.Azure;

/// <summary>
/// A receiver's write-ahead log in an Azure Blob Storage container, under a prefix: each segment an append blob, each
/// group of records one append (at most 4 MiB), durable when Azure acknowledges it. Keep it next to the checkpoint on
/// the same store, so that a hot standby on another machine that takes the checkpoint over also finds every record the
/// failed process acknowledged. Pass it to a receiver's constructor in place of a directory.
/// </summary>
/// <remarks>
/// Every append is conditional on the segment's length (its append position), so two processes never interleave a
/// frame: a process that finds the log longer than it knew (another one appended: an old active still running, or
/// this one just took over) first reads the records it did not write, then appends after them. Batches plan up to the
/// end the log has when they are planned, so the records of a process that failed are read by the one that took over.
/// Records are at most 4 MiB (Azure's limit per append, less 8 bytes): an HTTP request above that is refused with a
/// clear error. Every process that writes the log must use the same <see cref="ReceiverOptions.SegmentBytes"/>.
/// Requests that fail for a transient reason are retried for up to the outage limit (default 60 s).
/// </remarks>
public sealed class AzureBlobReceiverLogStorage : ReceiverLogStorage
{
    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly TimeSpan _outageLimit;

    /// <param name="container">The container (created if missing).</param>
    /// <param name="prefix">The log's prefix, one per receiver, for example <c>pipelines/clicks/wal/</c>.</param>
    /// <param name="outageLimit">How long a request keeps being retried while the store does not answer (default 60 s).</param>
    public AzureBlobReceiverLogStorage(BlobContainerClient container, string prefix, TimeSpan? outageLimit = null)
    {
        _container = container ?? throw new ArgumentNullException(nameof(container));
        BlobContainerGate.CheckContainerName(container.Name);
        if (string.IsNullOrWhiteSpace(prefix)) throw new ArgumentException("The receiver's log needs a prefix of its own in the container, for example 'pipelines/clicks/wal/'.", nameof(prefix));
        PipelineDsl.Checkpointing.CheckpointNames.Check(prefix.TrimEnd('/'), nameof(prefix));
        _prefix = prefix.TrimEnd('/') + "/";
        _outageLimit = outageLimit ?? TimeSpan.FromSeconds(60);
        if (_outageLimit <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(outageLimit), $"The outage limit is {_outageLimit}: it must be positive.");
    }

    /// <summary>A log in the container named <paramref name="containerName"/> of the account in <paramref name="connectionString"/>.</summary>
    public static AzureBlobReceiverLogStorage FromConnectionString(string connectionString, string containerName, string prefix) =>
        new(BlobContainerGate.Client(connectionString, containerName, TimeSpan.FromSeconds(30)), prefix);

    /// <inheritdoc />
    public override string Location => $"{_container.Uri.ToString().TrimEnd('/')}/{_prefix}";

    internal override WriteAheadLog Open(ReceiverOptions options) => BlobWriteAheadLog.Open(_container, _prefix, Location, options.SegmentBytes, _outageLimit);
}

/// <summary>The write-ahead log's segments as append blobs (see <see cref="AzureBlobReceiverLogStorage"/>).</summary>
internal sealed class BlobWriteAheadLog : WriteAheadLog
{
    // Azure's largest append block for every service version.
    private const int MaxAppendBytes = 4 << 20;

    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly string _location;
    private readonly BlobContainerGate _gate;

    private BlobWriteAheadLog(BlobContainerClient container, string prefix, string location, long segmentBytes, TimeSpan outageLimit)
        : base(segmentBytes)
    {
        _container = container;
        _prefix = prefix;
        _location = location;
        _gate = new BlobContainerGate(container, () => _location, "receiver's write-ahead log", outageLimit, (message, e) => new IOException(message, e));
    }

    public static BlobWriteAheadLog Open(BlobContainerClient container, string prefix, string location, long segmentBytes, TimeSpan outageLimit)
    {
        var log = new BlobWriteAheadLog(container, prefix, location, segmentBytes, outageLimit);
        log.OpenAsync().GetAwaiter().GetResult();
        return log;
    }

    public override string Location => _location;

    protected override int MaxGroupBytes => MaxAppendBytes;

    protected override bool Shared => true;

    private AppendBlobClient Segment(long first) => _container.GetAppendBlobClient(_prefix + SegmentName(first));

    protected override IEnumerable<long> ListSegments() =>
        _gate.RunAsync("listing its segments", async ct =>
        {
            var segments = new List<long>();
            await foreach (var item in _container.GetBlobsAsync(BlobTraits.None, BlobStates.None, _prefix, ct).ConfigureAwait(false))
            {
                string name = item.Name[_prefix.Length..];
                if (!name.Contains('/', StringComparison.Ordinal) && TryParseSegmentName(name, out long first)) segments.Add(first);
            }

            return segments;
        }, CancellationToken.None).GetAwaiter().GetResult();

    protected override Stream OpenRead(long first)
    {
        var blob = Segment(first);
        long length = _gate.RunAsync($"reading segment {SegmentName(first)}", async ct => (await blob.GetPropertiesAsync(cancellationToken: ct).ConfigureAwait(false)).Value.ContentLength, CancellationToken.None)
            .GetAwaiter().GetResult();
        return new RangeReadStream(this, blob, length);
    }

    protected override async Task<bool> CreateSegmentAsync(long first) =>
        await _gate.RunAsync($"creating segment {SegmentName(first)}", async ct =>
        {
            try
            {
                await Segment(first).CreateAsync(new AppendBlobCreateOptions { Conditions = new AppendBlobRequestConditions { IfNoneMatch = ETag.All } }, ct).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412)
            {
                return false; // another process began it: it is adopted as it is
            }
        }, CancellationToken.None).ConfigureAwait(false);

    protected override void OpenActive(long first, long validLength, long length)
    {
        // An append is whole or absent, so a segment that does not end on a whole frame was written by something else.
        if (validLength != length)
            throw new IOException($"The write-ahead log segment '{_location}{SegmentName(first)}' ends in {length - validLength} bytes that are not a whole record: appends to it are atomic, so it was damaged or written by another program. It holds acknowledged records: restore it, or move the log aside.");
    }

    protected override async Task<bool> AppendToSegmentAsync(long first, long length, ReadOnlyMemory<byte> frames)
    {
        var blob = Segment(first);
        bool appended = await _gate.RunAsync($"appending to segment {SegmentName(first)}", async ct =>
        {
            try
            {
                using var content = new MemoryStream(frames.ToArray(), writable: false);
                await blob.AppendBlockAsync(content, new AppendBlobAppendBlockOptions { Conditions = new AppendBlobRequestConditions { IfAppendPositionEqual = length } }, ct).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status == 412)
            {
                return false;
            }
        }, CancellationToken.None).ConfigureAwait(false);
        if (appended) return true;

        // The segment is longer than this process knew. Either an earlier attempt of this very append succeeded before its
        // answer was lost (the bytes after `length` are these frames), or another process appended.
        var after = await _gate.RunAsync($"reading segment {SegmentName(first)}", async ct =>
        {
            try
            {
                var range = await blob.DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(length, frames.Length) }, ct).ConfigureAwait(false);
                return range.Value.Content.ToArray();
            }
            catch (RequestFailedException e) when (e.Status == 416)
            {
                return Array.Empty<byte>();
            }
        }, CancellationToken.None).ConfigureAwait(false);
        return after.AsSpan().SequenceEqual(frames.Span);
    }

    protected override void DeleteSegment(long first) =>
        _gate.RunAsync($"deleting segment {SegmentName(first)}", async ct => (await Segment(first).DeleteIfExistsAsync(cancellationToken: ct).ConfigureAwait(false)).Value, CancellationToken.None)
            .GetAwaiter().GetResult();

    protected override void CloseMedium()
    {
    }

    /// <summary>A segment read in ranges of 4 MiB through the gate (so reads are retried like every other request), seekable.</summary>
    private sealed class RangeReadStream(BlobWriteAheadLog log, AppendBlobClient blob, long length) : Stream
    {
        private const int Chunk = 4 << 20;
        private byte[] _chunk = Array.Empty<byte>();
        private long _chunkStart;
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = value;
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_position >= length || count == 0) return 0;
            if (_position < _chunkStart || _position >= _chunkStart + _chunk.Length)
            {
                long start = _position;
                int size = (int)Math.Min(Chunk, length - start);
                _chunk = log._gate.RunAsync($"reading segment {blob.Name}", async ct =>
                    (await blob.DownloadContentAsync(new BlobDownloadOptions { Range = new HttpRange(start, size) }, ct).ConfigureAwait(false)).Value.Content.ToArray(), CancellationToken.None)
                    .GetAwaiter().GetResult();
                _chunkStart = start;
                if (_chunk.Length == 0) return 0;
            }

            int available = (int)Math.Min(count, _chunkStart + _chunk.Length - _position);
            Array.Copy(_chunk, _position - _chunkStart, buffer, offset, available);
            _position += available;
            return available;
        }

        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
