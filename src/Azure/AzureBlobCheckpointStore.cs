using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Checkpointing;

namespace PipelineDsl.Azure;

/// <summary>Settings of an <see cref="AzureBlobCheckpointStore"/>.</summary>
public sealed class AzureBlobCheckpointStoreOptions
{
    /// <summary>
    /// How long one store operation keeps retrying while the store does not answer (network errors, timeouts,
    /// 5xx, throttling) before the run fails with <see cref="CheckpointStoreUnavailableException"/>. Default 60 s.
    /// </summary>
    public TimeSpan OutageLimit { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long the lock holder's heartbeat must stay still before another process takes the checkpoint over
    /// (the holder crashed, lost its network, or is paused). The holder beats every fifth of this and writes only
    /// while its last heartbeat is younger than half of it, so a paused holder is fenced before it writes again.
    /// This bounds the takeover time after a crash. At least 1 s; default 5 s.
    /// </summary>
    public TimeSpan TakeoverAfter { get; set; } = TimeSpan.FromSeconds(5);

    internal TimeSpan HeartbeatInterval => TakeoverAfter / 5;

    /// <summary>The time one request may take before it counts as failed and is retried. Default 10 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The clock of lease ages and retry delays; tests replace it to simulate a paused process.</summary>
    internal TimeProvider Time { get; set; } = TimeProvider.System;

    internal void Validate()
    {
        if (OutageLimit <= TimeSpan.Zero) throw new ArgumentException($"AzureBlobCheckpointStoreOptions.OutageLimit is {OutageLimit}: it must be positive.");
        if (TakeoverAfter < TimeSpan.FromSeconds(1))
            throw new ArgumentException($"AzureBlobCheckpointStoreOptions.TakeoverAfter is {TakeoverAfter}: it must be at least 1 second (the holder beats every fifth of it).");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentException($"AzureBlobCheckpointStoreOptions.RequestTimeout is {RequestTimeout}: it must be positive.");
    }
}

/// <summary>
/// A checkpoint in an Azure Blob Storage container, under a prefix: each checkpoint entry is one block blob,
/// written whole in one request (a reader sees the old or the new content, never a mix) and durable when
/// Azure acknowledges it. The checkpoint's lock is its <c>lock</c> blob, an epoch record changed only by
/// compare-and-swap, with a heartbeat; a process that cannot prove it still holds the lock writes nothing
/// (<see cref="CheckpointFencedException"/>), and every blob written carries its writer's epoch.
/// Operations that fail for a transient reason are retried with backoff up to
/// <see cref="AzureBlobCheckpointStoreOptions.OutageLimit"/>.
/// </summary>
public sealed class AzureBlobCheckpointStore : ICheckpointStore
{
    private const string LockBlob = "lock";
    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly AzureBlobCheckpointStoreOptions _options;
    private readonly BlobContainerGate _gate;
    private HeldLock? _held;

    /// <summary>A store in <paramref name="container"/> (created if missing) under <paramref name="prefix"/> (for example <c>pipelines/clicks/</c>; empty for the container's root).</summary>
    public AzureBlobCheckpointStore(BlobContainerClient container, string prefix = "", AzureBlobCheckpointStoreOptions? options = null)
    {
        _container = container ?? throw new ArgumentNullException(nameof(container));
        BlobContainerGate.CheckContainerName(container.Name);
        prefix ??= "";
        if (prefix.Length > 0)
        {
            CheckpointNames.Check(prefix.TrimEnd('/'), nameof(prefix));
            prefix = prefix.TrimEnd('/') + "/";
        }

        _prefix = prefix;
        _options = options ?? new AzureBlobCheckpointStoreOptions();
        _options.Validate();
        _gate = new BlobContainerGate(container, () => Location, "checkpoint store", _options.OutageLimit,
            (message, inner) => new CheckpointStoreUnavailableException(
                message + " The batch in flight is not committed: start the pipeline again when the store is reachable. The limit is AzureBlobCheckpointStoreOptions.OutageLimit.", inner));
    }

    /// <summary>
    /// A store from a storage account's connection string (for Azurite: <c>UseDevelopmentStorage=true</c> or
    /// its full connection string). The client retries nothing itself: this store owns retries and their limit.
    /// It speaks service version 2026-06-06; a client passed to the constructor speaks its own (with Azurite,
    /// pin it to a version Azurite accepts, or start Azurite with <c>--skipApiVersionCheck</c>).
    /// </summary>
    public static AzureBlobCheckpointStore FromConnectionString(string connectionString, string containerName, string prefix = "", AzureBlobCheckpointStoreOptions? options = null)
    {
        options ??= new AzureBlobCheckpointStoreOptions();
        return new AzureBlobCheckpointStore(BlobContainerGate.Client(connectionString, containerName, options.RequestTimeout), prefix, options);
    }

    /// <inheritdoc />
    public string Location => _container.Uri.AbsoluteUri.TrimEnd('/') + "/" + _prefix;

    /// <inheritdoc />
    public Task WriteAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        var blob = Blob(name);
        return RunAsync($"writing '{name}'", async ct =>
        {
            await EnsureLockHeldAsync(ct).ConfigureAwait(false);
            var upload = new BlobUploadOptions { Metadata = new Dictionary<string, string> { ["epoch"] = Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) } };
            await blob.UploadAsync(BinaryData.FromBytes(content), upload, ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>A Put Blob with <c>If-None-Match: *</c>: Azure makes the check and the write one step.</remarks>
    public Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        var blob = Blob(name);
        return RunAsync($"creating '{name}'", async ct =>
        {
            await EnsureLockHeldAsync(ct).ConfigureAwait(false);
            var upload = new BlobUploadOptions
            {
                Metadata = new Dictionary<string, string> { ["epoch"] = Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            };
            try
            {
                await blob.UploadAsync(BinaryData.FromBytes(content), upload, ct).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412)
            {
                return false;
            }
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Free while the last heartbeat is younger than half of TakeoverAfter; otherwise one heartbeat, which fails if the lock was taken.</remarks>
    public Task ConfirmLockAsync(CancellationToken cancellationToken) =>
        RunAsync("confirming the checkpoint's lock", async ct =>
        {
            await EnsureLockHeldAsync(ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    /// <inheritdoc />
    public Task<byte[]?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        var blob = Blob(name);
        return RunAsync($"reading '{name}'", async ct =>
        {
            try
            {
                var result = await blob.DownloadContentAsync(ct).ConfigureAwait(false);
                return (byte[]?)result.Value.Content.ToArray();
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return null;
            }
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListAsync(string folder, CancellationToken cancellationToken)
    {
        string inner = CheckpointNames.Check(folder.TrimEnd('/'), nameof(folder)) + "/";
        return RunAsync($"listing '{inner}'", async ct =>
        {
            var names = new List<string>();
            await foreach (var item in _container.GetBlobsByHierarchyAsync(BlobTraits.None, BlobStates.None, "/", _prefix + inner, ct).ConfigureAwait(false))
            {
                if (item.IsBlob) names.Add(item.Blob.Name.Substring(_prefix.Length));
            }

            names.Sort(StringComparer.Ordinal);
            return (IReadOnlyList<string>)names;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var blob = Blob(name);
        return RunAsync($"deleting '{name}'", async ct =>
        {
            await EnsureLockHeldAsync(ct).ConfigureAwait(false);
            await blob.DeleteIfExistsAsync(cancellationToken: ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The lock is the <c>lock</c> blob: a record of the holder's epoch, name and heartbeat count, changed only by
    /// compare-and-swap (a write conditional on the ETag last seen). The holder bumps its heartbeat every fifth of
    /// <see cref="AzureBlobCheckpointStoreOptions.TakeoverAfter"/>. A new process that finds the lock held watches
    /// it: if the heartbeat moves, the holder is alive and the call throws <see cref="CheckpointLockedException"/>
    /// naming it; if it stays still for <see cref="AzureBlobCheckpointStoreOptions.TakeoverAfter"/>, the holder is
    /// gone (killed, its machine lost, or paused) and the new process takes the lock with the next epoch.
    /// </remarks>
    public IDisposable AcquireLock(string owner)
    {
        if (_held is { Released: false }) throw new CheckpointLockedException($"The checkpoint '{Location}' is already locked by this store instance ({_held.Owner}).");
        var held = RunAsync("taking the checkpoint's lock", ct => AcquireLockAsync(owner, ct), CancellationToken.None).GetAwaiter().GetResult();
        _held = held;
        return held;
    }

    private async Task<HeldLock> AcquireLockAsync(string owner, CancellationToken ct)
    {
        var blob = Blob(LockBlob);
        string who = $"{owner}, process {Environment.ProcessId} on {Environment.MachineName}";
        var time = _options.Time;
        LockRecord? watched = null;
        ETag watchedTag = default;
        long stillSince = 0;
        while (true)
        {
            var (record, tag) = await ReadLockAsync(blob, ct).ConfigureAwait(false);
            LockRecord? claim = record switch
            {
                null => new LockRecord(1, who, 0, Released: false),
                { Released: true } => new LockRecord(record.Epoch + 1, who, 0, Released: false),
                _ => null,
            };

            if (claim is null)
            {
                // Held: watch its heartbeat. A moving heartbeat is a live holder; a still one, for TakeoverAfter, a gone one.
                if (watched is null || tag != watchedTag)
                {
                    if (watched is not null)
                    {
                        throw new CheckpointLockedException(
                            $"The checkpoint '{Location}' is in use by {record!.Owner} (epoch {record.Epoch}), whose heartbeat is moving. Only one process may run a pipeline on a checkpoint: "
                            + "stop the other process, or give this one another checkpoint.");
                    }

                    watched = record;
                    watchedTag = tag;
                    stillSince = time.GetTimestamp();
                }
                else if (time.GetElapsedTime(stillSince) >= _options.TakeoverAfter)
                {
                    claim = new LockRecord(record!.Epoch + 1, who, 0, Released: false);
                }

                if (claim is null)
                {
                    await Task.Delay(_options.HeartbeatInterval, time, ct).ConfigureAwait(false);
                    continue;
                }
            }

            long sent = time.GetTimestamp();
            var written = await TryWriteLockAsync(blob, claim, record is null ? null : tag, ct).ConfigureAwait(false);
            if (written is { } newTag)
            {
                var held = new HeldLock(this, blob, claim, newTag, sent, owner, taken: record is { Released: false } ? record : null);
                held.StartHeartbeat();
                return held;
            }

            // Another process changed the lock between our read and our write: look again.
            watched = null;
        }
    }

    /// <inheritdoc />
    /// <remarks>The lock record: its owner and epoch, its heartbeat count, and whether its owner released it.</remarks>
    public async Task<string?> DescribeLockHolderAsync(CancellationToken cancellationToken)
    {
        var blob = Blob(LockBlob);
        var (record, _) = await RunAsync("read the lock", ct => ReadLockAsync(blob, ct), cancellationToken).ConfigureAwait(false);
        return record is null ? null : $"{record.Owner}, epoch {record.Epoch}, heartbeat {record.Heartbeat}{(record.Released ? ", released" : "")}";
    }

    private static async Task<(LockRecord? Record, ETag Tag)> ReadLockAsync(BlobClient blob, CancellationToken ct)
    {
        try
        {
            var result = await blob.DownloadContentAsync(ct).ConfigureAwait(false);
            return (LockRecord.Parse(result.Value.Content.ToMemory(), blob.Name), result.Value.Details.ETag);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return (null, default);
        }
    }

    /// <summary>Writes the lock record if the blob is still at <paramref name="expected"/> (or absent, when null); the new ETag, or null when it moved.</summary>
    private static async Task<ETag?> TryWriteLockAsync(BlobClient blob, LockRecord record, ETag? expected, CancellationToken ct)
    {
        var conditions = expected is { } tag ? new BlobRequestConditions { IfMatch = tag } : new BlobRequestConditions { IfNoneMatch = ETag.All };
        try
        {
            var result = await blob.UploadAsync(BinaryData.FromBytes(record.ToBytes()), new BlobUploadOptions { Conditions = conditions }, ct).ConfigureAwait(false);
            return result.Value.ETag;
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            return null;
        }
    }

    /// <summary>
    /// Writes only while this process provably holds the lock: when its last confirmed heartbeat is older than
    /// half of <see cref="AzureBlobCheckpointStoreOptions.TakeoverAfter"/> (the background heartbeat is late, for
    /// example after a pause of this process), it beats first. If another process took the lock meanwhile, that
    /// fails and this process is fenced.
    /// </summary>
    private async Task EnsureLockHeldAsync(CancellationToken ct)
    {
        if (_held is not { } held) return;
        if (held.Released) throw new CheckpointFencedException($"The lock on checkpoint '{Location}' was released; this store writes nothing more.");
        if (held.Lost is { } lost) throw lost;
        if (_options.Time.GetElapsedTime(held.ConfirmedAt) < _options.TakeoverAfter / 2) return;
        await held.BeatAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The epoch of the lock this store holds, or 0; stamped on every blob it writes (metadata <c>epoch</c>).</summary>
    internal long Epoch => _held is { Released: false } held ? held.Record.Epoch : 0;

    private BlobClient Blob(string name) => _container.GetBlobClient(_prefix + CheckpointNames.Check(name));

    private Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken) =>
        _gate.RunAsync(what, operation, cancellationToken);

    /// <summary>The lock record: whose it is, its epoch, its heartbeat count, and whether it was released.</summary>
    internal sealed record LockRecord(long Epoch, string Owner, long Heartbeat, bool Released)
    {
        public byte[] ToBytes() => System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["epoch"] = Epoch, ["owner"] = Owner, ["heartbeat"] = Heartbeat, ["released"] = Released,
        });

        public static LockRecord Parse(ReadOnlyMemory<byte> bytes, string blobName)
        {
            try
            {
                using var json = System.Text.Json.JsonDocument.Parse(bytes);
                var root = json.RootElement;
                return new LockRecord(root.GetProperty("epoch").GetInt64(), root.GetProperty("owner").GetString() ?? "?", root.GetProperty("heartbeat").GetInt64(), root.GetProperty("released").GetBoolean());
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new CheckpointCorruptException($"The checkpoint's lock blob '{blobName}' is not a lock record ({e.Message}). Remove it only if no process runs this pipeline.", e);
            }
        }
    }

    /// <summary>The lock held: its record and ETag, moved forward by a heartbeat every fifth of TakeoverAfter until released.</summary>
    private sealed class HeldLock : IDisposable
    {
        private readonly AzureBlobCheckpointStore _store;
        private readonly BlobClient _blob;
        private readonly CancellationTokenSource _stop = new();
        private readonly SemaphoreSlim _beating = new(1, 1);
        private ETag _tag;
        private Task _loop = Task.CompletedTask;

        public HeldLock(AzureBlobCheckpointStore store, BlobClient blob, LockRecord record, ETag tag, long sentAt, string owner, LockRecord? taken)
        {
            _store = store;
            _blob = blob;
            Record = record;
            _tag = tag;
            ConfirmedAt = sentAt;
            Owner = owner;
            TakenFrom = taken;
        }

        public string Owner { get; }

        public LockRecord Record { get; private set; }

        /// <summary>The holder whose still heartbeat this lock was taken from, if any.</summary>
        public LockRecord? TakenFrom { get; }

        /// <summary>When the last confirmed heartbeat (or the acquisition) was sent: the lock was held at least until then.</summary>
        public long ConfirmedAt { get; private set; }

        public CheckpointFencedException? Lost { get; private set; }

        public bool Released { get; private set; }

        public void StartHeartbeat() => _loop = Task.Run(HeartbeatLoopAsync);

        private async Task HeartbeatLoopAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(_store._options.HeartbeatInterval, _store._options.Time, _stop.Token).ConfigureAwait(false);
                    await BeatAsync(_stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (CheckpointFencedException)
                {
                    return;
                }
                catch (Exception e) when (BlobContainerGate.IsTransient(e))
                {
                    // The store is not answering: the next heartbeat (or the next write's) tries again.
                }
            }
        }

        /// <summary>Moves the heartbeat on, conditional on the ETag this holder wrote last; a mismatch means another process took the lock.</summary>
        public async Task BeatAsync(CancellationToken ct)
        {
            await _beating.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (Lost is { } lost) throw lost;
                var next = Record with { Heartbeat = Record.Heartbeat + 1 };
                long sent = _store._options.Time.GetTimestamp();
                if (await TryWriteLockAsync(_blob, next, _tag, ct).ConfigureAwait(false) is { } tag)
                {
                    Record = next;
                    _tag = tag;
                    ConfirmedAt = sent;
                    return;
                }

                string successor = "another process";
                try
                {
                    if ((await ReadLockAsync(_blob, ct).ConfigureAwait(false)).Record is { } now) successor = $"{now.Owner} (epoch {now.Epoch})";
                }
                catch (Exception e) when (e is RequestFailedException || BlobContainerGate.IsTransient(e) || e is CheckpointCorruptException)
                {
                }

                Lost = new CheckpointFencedException(
                    $"This process ({Owner}, epoch {Record.Epoch}) lost the lock on checkpoint '{_store.Location}' to {successor}, which took over after this one's heartbeat stopped "
                    + $"for {_store._options.TakeoverAfter.TotalSeconds:F0} s (a crash, a lost network, or a pause of this process). It writes nothing more and stops; the new holder continues exactly.");
                throw Lost;
            }
            finally
            {
                _beating.Release();
            }
        }

        public void Dispose()
        {
            if (Released) return;
            Released = true;
            _stop.Cancel();
            try
            {
                _loop.GetAwaiter().GetResult();
            }
            catch (Exception)
            {
                // The loop ends on cancellation; nothing else it can raise matters once the lock is given up.
            }

            if (Lost is null)
            {
                try
                {
                    // Released: the next process takes the lock at once instead of waiting for TakeoverAfter.
                    using var timeout = new CancellationTokenSource(_store._options.RequestTimeout);
                    TryWriteLockAsync(_blob, Record with { Released = true }, _tag, timeout.Token).GetAwaiter().GetResult();
                }
                catch (Exception e) when (e is RequestFailedException || BlobContainerGate.IsTransient(e))
                {
                    // Not released: the next process waits TakeoverAfter for the still heartbeat instead.
                }
            }

            _stop.Dispose();
        }
    }
}
