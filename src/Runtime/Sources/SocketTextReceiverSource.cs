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
/// the next connection's first line; so is a line longer than 1 MiB (<see cref="LastError"/> says so). When the backlog
/// reaches <see cref="ReceiverOptions.MaxBacklogRecords"/>, reading pauses, so the server's writes block instead of the
/// log growing without bound.
/// </remarks>
public sealed class SocketTextReceiverSource : ReceiverSource<string>
{
    // Writes in flight at once: enough for group commit to gather many lines per fsync.
    private const int InFlight = 4096;
    private const int MaxLineBytes = 1 << 20;

    private readonly string _host;
    private readonly int _port;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private long _lines;
    private volatile string? _lastError;

    /// <param name="host">The server to connect to.</param>
    /// <param name="port">Its port.</param>
    /// <param name="log">Where the write-ahead log lives: a directory, or an object store (PipelineDsl.Azure).</param>
    /// <param name="options">Backlog bound and segment size.</param>
    public SocketTextReceiverSource(string host, int port, ReceiverLogStorage log, ReceiverOptions? options = null)
        : base(log, options)
    {
        if (string.IsNullOrWhiteSpace(host)) throw new ArgumentException("The socket receiver needs a host.", nameof(host));
        if (port is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), $"Port {port} is not a TCP port (1-65535).");
        _host = host;
        _port = port;
        _reader = Task.Run(ReadLoopAsync);
    }

    /// <inheritdoc />
    public override string Description => $"socket {_host}:{_port} (write-ahead log {LogLocation})";

    /// <summary>Lines this receiver read and handed to its log since it started (durable a moment later).</summary>
    public long LinesReceived => Volatile.Read(ref _lines);

    /// <summary>Why the last connection failed or ended, or the last line dropped, if any (null while connected or before the first attempt).</summary>
    public string? LastError => _lastError;

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
                await ReadLinesAsync(client.GetStream(), ct).ConfigureAwait(false);
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

    /// <summary>
    /// Splits the stream into lines in a buffer (a <c>\n</c> byte is never part of a multi-byte UTF-8 character, so lines
    /// are cut on bytes and logged as the bytes received) and appends each whole line. Bytes after the last <c>\n</c> when
    /// the stream ends are a cut line and are dropped.
    /// </summary>
    private async Task ReadLinesAsync(Stream stream, CancellationToken ct)
    {
        var pending = new Queue<Task<long>>();
        var buffer = new byte[64 * 1024];
        int filled = 0;
        bool skipping = false; // inside a line too long to keep, until its \n
        try
        {
            while (true)
            {
                if (filled == buffer.Length)
                {
                    if (buffer.Length >= MaxLineBytes)
                    {
                        _lastError = $"{_host}:{_port} sent a line longer than {MaxLineBytes} bytes: it was dropped";
                        skipping = true;
                        filled = 0;
                    }
                    else
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }
                }

                int read = await stream.ReadAsync(buffer.AsMemory(filled), ct).ConfigureAwait(false);
                if (read == 0) return;
                int scanFrom = filled;
                filled += read;
                int lineStart = 0;
                int newline;
                while ((newline = Array.IndexOf(buffer, (byte)'\n', scanFrom, filled - scanFrom)) >= 0)
                {
                    int end = newline > lineStart && buffer[newline - 1] == (byte)'\r' ? newline - 1 : newline;
                    if (!skipping)
                    {
                        await WaitForRoomAsync(ct).ConfigureAwait(false);
                        // One producer: each append is admitted at once after the wait, so the log keeps the lines' order.
                        pending.Enqueue(AppendAsync(buffer.AsSpan(lineStart, end - lineStart).ToArray(), ct));
                        if (pending.Count >= InFlight) await pending.Dequeue().ConfigureAwait(false);
                        Interlocked.Increment(ref _lines);
                    }

                    skipping = false;
                    lineStart = scanFrom = newline + 1;
                }

                // Keep the unfinished line at the front of the buffer.
                Array.Copy(buffer, lineStart, buffer, 0, filled - lineStart);
                filled -= lineStart;
            }
        }
        finally
        {
            while (pending.Count > 0) await pending.Dequeue().ConfigureAwait(false);
        }
    }

    private protected override void Emit(long position, ReadOnlyMemory<byte> logged, ISourceOutput<string> output) =>
        output.Emit(position, Encoding.UTF8.GetString(logged.Span));

    private protected override void StopReceiving()
    {
        _stop.Cancel();
        try
        {
            _reader.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}
