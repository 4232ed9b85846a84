using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Serialization;

namespace PipelineDsl.Sources;

/// <summary>What became of a request given to <see cref="HttpReceiverSource{T}.IngestAsync"/>.</summary>
public enum IngestOutcome
{
    /// <summary>The request's records are durable in the write-ahead log.</summary>
    Accepted,

    /// <summary>A request with the same idempotency key is already in the log: nothing was added (answer as for the first).</summary>
    Duplicate,

    /// <summary>The backlog is at its bound: nothing was added; send the request again later (HTTP 503 with Retry-After).</summary>
    Backlogged,
}

/// <summary>The answer to one request.</summary>
/// <param name="Outcome">Accepted, duplicate or backlogged.</param>
/// <param name="Position">The request's position in the log (for a duplicate, the first request's); -1 when backlogged.</param>
public sealed record IngestResult(IngestOutcome Outcome, long Position);

/// <summary>
/// The receiving end of an HTTP ingestion endpoint (<c>MapPipelineReceiver</c> in PipelineDsl.Hosting.Web): each request,
/// its lines and its idempotency key are appended to a write-ahead log as one entry, durable before the request is
/// answered, and batches are planned over the log's positions (one position per request). A client that retries a
/// request it got no answer for, with the same key, adds nothing the second time: exactly-once from an acknowledging
/// client to the output. Lines are parsed when a batch reads them; a line that does not parse is a bad record (the
/// pipeline's policy decides), never a lost request.
/// </summary>
/// <remarks>
/// Keys are remembered while the log holds their request: after a restart they are read back from the log, and they are
/// forgotten when retention deletes the request's segment (once no recovery can read it). A retry older than that adds
/// the request again: retry within minutes, not days.
/// </remarks>
/// <typeparam name="T">The record type.</typeparam>
public sealed class HttpReceiverSource<T> : ReceiverSource<T>
{
    private readonly Func<string, T> _parse;
    // Every key in the log or being appended, with the position its request got.
    private readonly ConcurrentDictionary<string, Task<long>> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, string> _keyAt = new();

    /// <summary>One logged request: its key (null: none) and its lines.</summary>
    private sealed record Request(string? Key, string[] Lines);

    /// <param name="log">Where the write-ahead log lives: a directory, or an object store (PipelineDsl.Azure).</param>
    /// <param name="parse">Turns a line into a record; a failure makes the line a bad record.</param>
    /// <param name="options">Backlog bound (in requests) and segment size.</param>
    public HttpReceiverSource(ReceiverLogStorage log, Func<string, T> parse, ReceiverOptions? options = null)
        : base(log, options)
    {
        _parse = parse ?? throw new ArgumentNullException(nameof(parse));
        // The keys of the requests the log still holds: a client's retry after a restart is still recognized.
        long start = GetInitialPositionAsync("0", true, default).GetAwaiter().GetResult();
        long end = GetEndPositionAsync("0", default).GetAwaiter().GetResult();
        ReadLogged(start, end, (position, logged) =>
        {
            if (DecodeLogged(position, logged).Key is { } key) Remember(key, position);
        });
    }

    private void Remember(string key, long position)
    {
        _keys[key] = Task.FromResult(position);
        _keyAt[position] = key;
    }

    /// <inheritdoc />
    public override string Description => $"HTTP receiver (write-ahead log {LogLocation})";

    /// <summary>
    /// Logs a request's <paramref name="lines"/> under <paramref name="idempotencyKey"/> (null: none) and completes once
    /// they are durable. A key already logged (or being logged) adds nothing: the answer is <see cref="IngestOutcome.Duplicate"/>
    /// with the first request's position. At the backlog bound nothing is added: <see cref="IngestOutcome.Backlogged"/>.
    /// A write that fails (a full disk) throws <see cref="System.IO.IOException"/>; the request is then not in the log.
    /// </summary>
    public async Task<IngestResult> IngestAsync(IReadOnlyList<string> lines, string? idempotencyKey, CancellationToken cancellationToken = default)
    {
        if (lines is null) throw new ArgumentNullException(nameof(lines));
        if (idempotencyKey is { Length: 0 or > 200 }) throw new ArgumentException("An idempotency key has 1 to 200 characters.", nameof(idempotencyKey));
        if (idempotencyKey is not null && _keys.TryGetValue(idempotencyKey, out var earlier))
            return new IngestResult(IngestOutcome.Duplicate, await earlier.ConfigureAwait(false));
        if (Backlog >= MaxBacklog) return new IngestResult(IngestOutcome.Backlogged, -1);

        var payload = Encode(new Request(idempotencyKey, [.. lines]));
        if (idempotencyKey is null) return new IngestResult(IngestOutcome.Accepted, await AppendAsync(payload, cancellationToken).ConfigureAwait(false));

        var append = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var claimed = _keys.GetOrAdd(idempotencyKey, append.Task);
        if (claimed != append.Task) return new IngestResult(IngestOutcome.Duplicate, await claimed.ConfigureAwait(false));
        try
        {
            long position = await AppendAsync(payload, cancellationToken).ConfigureAwait(false);
            _keyAt[position] = idempotencyKey;
            append.SetResult(position);
            return new IngestResult(IngestOutcome.Accepted, position);
        }
        catch (Exception e)
        {
            // Not in the log: a retry with this key must be able to try again.
            _keys.TryRemove(new KeyValuePair<string, Task<long>>(idempotencyKey, append.Task));
            append.SetException(e);
            throw;
        }
    }

    private static byte[] Encode(Request request)
    {
        var w = new MessagePackWriter(256);
        w.WriteArrayHeader(2);
        if (request.Key is null) w.WriteNil();
        else w.Write(request.Key);
        w.WriteArrayHeader(request.Lines.Length);
        foreach (string line in request.Lines) w.Write(line);
        return w.ToArray();
    }

    /// <summary>A logged request; one that does not decode means the log is damaged (its frames passed their checksums, so another program wrote it).</summary>
    private static Request DecodeLogged(long position, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            var r = new MessagePackReader(bytes.Span);
            if (r.ReadArrayHeader() != 2) throw new MessagePackException("a logged request is not a [key, lines] array");
            string? key = null;
            if (r.NextType == MessagePackType.Nil) r.ReadNil();
            else key = r.ReadString();
            var lines = new string[r.ReadArrayHeader()];
            for (int i = 0; i < lines.Length; i++) lines[i] = r.ReadString() ?? "";
            return new Request(key, lines);
        }
        catch (Exception e) when (e is MessagePackException or InvalidOperationException or ArgumentException or IndexOutOfRangeException)
        {
            throw new System.IO.IOException($"Request {position} of the receiver's write-ahead log does not decode ({e.Message}): the log is damaged.", e);
        }
    }

    /// <summary>Hands each line of a logged request to the batch, parsed; a line that does not parse is a bad record at its request's position.</summary>
    private protected override void Emit(long position, ReadOnlyMemory<byte> logged, ISourceOutput<T> output)
    {
        foreach (string line in DecodeLogged(position, logged).Lines)
        {
            T record;
            try
            {
                record = _parse(line);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                output.Reject(position, line, e);
                continue;
            }

            output.Emit(position, record);
        }
    }

    /// <summary>A request another process logged (a shared log): its key is known from now on, so its retry is a duplicate here too.</summary>
    private protected override void OnLoggedElsewhere(long position, ReadOnlyMemory<byte> logged)
    {
        if (DecodeLogged(position, logged).Key is { } key) Remember(key, position);
    }

    /// <inheritdoc />
    public override async Task OnNoLongerNeededBelowAsync(IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken)
    {
        await base.OnNoLongerNeededBelowAsync(positions, cancellationToken).ConfigureAwait(false);
        // Keys of requests whose segments are gone are forgotten with them.
        long start = await GetInitialPositionAsync("0", true, cancellationToken).ConfigureAwait(false);
        foreach (var (position, key) in _keyAt)
        {
            if (position >= start || !_keyAt.TryRemove(position, out _)) continue;
            _keys.TryRemove(key, out _);
        }
    }
}
