using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>
/// Lines of text read from a TCP server, like Spark's <c>socketTextStream</c>: the receiver connects to
/// <c>host:port</c>, reads UTF-8 lines (<c>\n</c>, a trailing <c>\r</c> dropped) and appends each to a write-ahead log,
/// over whose positions batches are planned. It reconnects after the connection drops or cannot be made.
/// </summary>
/// <remarks>
/// Guarantees, honestly: TCP has no acknowledgements here, so lines the server sent that were not yet durable in the
/// log when the process died (in socket buffers, or being written) are lost: at-most-once for what was in flight,
/// exactly-once to the sinks for what reached the log. A line cut by a dropped connection is dropped, not joined with
/// the next connection's first line. When the backlog reaches <see cref="ReceiverOptions.MaxBacklogRecords"/>, reading
/// pauses, so the server's writes block instead of the log growing without bound.
/// </remarks>
public sealed class SocketTextReceiverSource : ISourceConnector<string>, ISourceCommitListener, IDisposable
{
    // Writes in flight at once: enough for group commit to gather many lines per fsync.
    private const int InFlight = 4096;

    private readonly ChannelReceiverSource<string> _log;
    private readonly string _host;
    private readonly int _port;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private long _lines;
    private volatile string? _lastError;

    /// <param name="host">The server to connect to.</param>
    /// <param name="port">Its port.</param>
    /// <param name="walDirectory">The write-ahead log's directory (one per receiver, on durable storage).</param>
    /// <param name="options">Backlog bound and segment size.</param>
    public SocketTextReceiverSource(string host, int port, string walDirectory, ReceiverOptions? options = null)
    {
        if (string.IsNullOrWhiteSpace(host)) throw new ArgumentException("The socket receiver needs a host.", nameof(host));
        if (port is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), $"Port {port} is not a TCP port (1-65535).");
        _host = host;
        _port = port;
        _log = new ChannelReceiverSource<string>(walDirectory, line => Encoding.UTF8.GetBytes(line), bytes => Encoding.UTF8.GetString(bytes.Span), options);
        _reader = Task.Run(ReadLoopAsync);
    }

    /// <inheritdoc />
    public string Description => $"socket {_host}:{_port} (write-ahead log {_log.LogLocation})";

    /// <summary>Lines this receiver read and handed to its log since it started (durable a moment later).</summary>
    public long LinesReceived => Volatile.Read(ref _lines);

    /// <summary>Why the last connection failed or ended, if it did (null while connected or before the first attempt).</summary>
    public string? LastError => _lastError;

    /// <summary>Records read by no committed batch yet.</summary>
    public long Backlog => _log.Backlog;

    private async Task ReadLoopAsync()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(_host, _port, ct).ConfigureAwait(false);
                _lastError = null;
                using var reader = new StreamReader(client.GetStream(), new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false);
                var pending = new Queue<Task<long>>();
                while (await ReadWholeLineAsync(reader, ct).ConfigureAwait(false) is { } line)
                {
                    await _log.WaitForRoomAsync(ct).ConfigureAwait(false);
                    // One producer: each write is admitted at once after the wait, so the log keeps the lines' order.
                    pending.Enqueue(_log.WriteAsync(line, ct));
                    if (pending.Count >= InFlight) await pending.Dequeue().ConfigureAwait(false);
                    Interlocked.Increment(ref _lines);
                }

                while (pending.Count > 0) await pending.Dequeue().ConfigureAwait(false);
                _lastError = $"{_host}:{_port} closed the connection";
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
                _lastError = $"{_host}:{_port}: {e.Message}";
            }

            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The next line ended by <c>\n</c>; null at the end of the stream (a last line without its <c>\n</c> is dropped: it may be cut).</summary>
    private static async Task<string?> ReadWholeLineAsync(StreamReader reader, CancellationToken ct)
    {
        var line = new StringBuilder();
        var one = new char[1];
        while (true)
        {
            // StreamReader.ReadLineAsync cannot tell a line ended by \n from one cut by the end of the stream.
            if (await reader.ReadAsync(one.AsMemory(), ct).ConfigureAwait(false) == 0) return null;
            if (one[0] == '\n')
            {
                if (line.Length > 0 && line[^1] == '\r') line.Length--;
                return line.ToString();
            }

            line.Append(one[0]);
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) => _log.ListPartitionsAsync(cancellationToken);

    /// <inheritdoc />
    public Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) => _log.GetInitialPositionAsync(partition, partitionIsNew, cancellationToken);

    /// <inheritdoc />
    public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken) => _log.GetEndPositionAsync(partition, cancellationToken);

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
        _log.AdvanceAsync(partition, from, available, maxRecords, cancellationToken);

    /// <inheritdoc />
    public Task ReadAsync(string partition, long from, long to, ISourceOutput<string> output, CancellationToken cancellationToken) =>
        _log.ReadAsync(partition, from, to, output, cancellationToken);

    /// <inheritdoc />
    public Task OnBatchCommittedAsync(long batchId, IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken) =>
        _log.OnBatchCommittedAsync(batchId, positions, cancellationToken);

    /// <inheritdoc />
    public Task OnNoLongerNeededBelowAsync(IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken) =>
        _log.OnNoLongerNeededBelowAsync(positions, cancellationToken);

    /// <summary>Stops reading, waits for the lines in flight, and closes the log.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        try
        {
            _reader.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
        }

        _log.Dispose();
        _stop.Dispose();
    }
}
