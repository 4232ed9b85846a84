using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Azure;
using Azure.Core;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
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
    /// The lease on the checkpoint's <c>lock</c> blob: 15 to 60 s (Azure's bounds). The holder renews it every
    /// third of this; after a crash another instance can take the checkpoint once it expires. Default 15 s.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The time one request may take before it counts as failed and is retried. Default 10 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The clock of lease ages and retry delays; tests replace it to simulate a paused process.</summary>
    internal TimeProvider Time { get; set; } = TimeProvider.System;

    internal void Validate()
    {
        if (OutageLimit <= TimeSpan.Zero) throw new ArgumentException($"AzureBlobCheckpointStoreOptions.OutageLimit is {OutageLimit}: it must be positive.");
        if (LeaseDuration < TimeSpan.FromSeconds(15) || LeaseDuration > TimeSpan.FromSeconds(60))
            throw new ArgumentException($"AzureBlobCheckpointStoreOptions.LeaseDuration is {LeaseDuration}: Azure leases last 15 to 60 seconds.");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentException($"AzureBlobCheckpointStoreOptions.RequestTimeout is {RequestTimeout}: it must be positive.");
    }
}

/// <summary>
/// A checkpoint in an Azure Blob Storage container, under a prefix: each checkpoint entry is one block blob,
/// written whole in one request (a reader sees the old or the new content, never a mix) and durable when
/// Azure acknowledges it. The checkpoint's lock is a lease on its <c>lock</c> blob, renewed in the background;
/// a process that cannot prove it still holds the lease writes nothing (<see cref="CheckpointFencedException"/>).
/// Operations that fail for a transient reason are retried with backoff up to
/// <see cref="AzureBlobCheckpointStoreOptions.OutageLimit"/>.
/// </summary>
public sealed class AzureBlobCheckpointStore : ICheckpointStore
{
    private const string LockBlob = "lock";
    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly AzureBlobCheckpointStoreOptions _options;
    private Task? _containerReady;
    private HeldLease? _lease;

    /// <summary>A store in <paramref name="container"/> (created if missing) under <paramref name="prefix"/> (for example <c>pipelines/clicks/</c>; empty for the container's root).</summary>
    public AzureBlobCheckpointStore(BlobContainerClient container, string prefix = "", AzureBlobCheckpointStoreOptions? options = null)
    {
        _container = container ?? throw new ArgumentNullException(nameof(container));
        prefix ??= "";
        if (prefix.Length > 0)
        {
            CheckpointNames.Check(prefix.TrimEnd('/'), nameof(prefix));
            prefix = prefix.TrimEnd('/') + "/";
        }

        _prefix = prefix;
        _options = options ?? new AzureBlobCheckpointStoreOptions();
        _options.Validate();
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
        // Pinned: the newest service version that Azurite 3.37 (the emulator the tests run on) accepts; Azure
        // serves older versions indefinitely, and the SDK's default moves with every release.
        var clientOptions = new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06);
        clientOptions.Retry.MaxRetries = 0;
        clientOptions.Retry.NetworkTimeout = options.RequestTimeout;
        return new AzureBlobCheckpointStore(new BlobContainerClient(connectionString, containerName, clientOptions), prefix, options);
    }

    /// <inheritdoc />
    public string Location => _container.Uri.AbsoluteUri.TrimEnd('/') + "/" + _prefix;

    /// <inheritdoc />
    public Task WriteAsync(string name, ReadOnlyMemory<byte> content, bool durable, CancellationToken cancellationToken)
    {
        var blob = Blob(name);
        return RunAsync($"writing '{name}'", async ct =>
        {
            await EnsureLeaseAsync(ct).ConfigureAwait(false);
            await blob.UploadAsync(BinaryData.FromBytes(content), overwrite: true, ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

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
            await EnsureLeaseAsync(ct).ConfigureAwait(false);
            await blob.DeleteIfExistsAsync(cancellationToken: ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Takes a lease of <see cref="AzureBlobCheckpointStoreOptions.LeaseDuration"/> on the <c>lock</c> blob and
    /// renews it in the background. A crashed holder's lease expires after that duration; until then a new
    /// process is refused with <see cref="CheckpointLockedException"/> naming the holder.
    /// </remarks>
    public IDisposable AcquireLock(string owner)
    {
        if (_lease is { Released: false }) throw new CheckpointLockedException($"The checkpoint '{Location}' is already locked by this store instance ({_lease.Owner}).");
        var lease = RunAsync("taking the checkpoint's lease", ct => AcquireLeaseAsync(owner, ct), CancellationToken.None).GetAwaiter().GetResult();
        _lease = lease;
        return lease;
    }

    private async Task<HeldLease> AcquireLeaseAsync(string owner, CancellationToken ct)
    {
        var blob = Blob(LockBlob);
        try
        {
            await blob.UploadAsync(BinaryData.FromBytes(Array.Empty<byte>()), overwrite: false, ct).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            // It exists (and may be leased): that is the normal case after the first run.
        }

        var client = blob.GetBlobLeaseClient(Guid.NewGuid().ToString());
        long sent = _options.Time.GetTimestamp();
        try
        {
            await client.AcquireAsync(_options.LeaseDuration, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.Status == 409)
        {
            string holder = "another process";
            try
            {
                var properties = await blob.GetPropertiesAsync(cancellationToken: ct).ConfigureAwait(false);
                if (properties.Value.Metadata.TryGetValue("owner", out var o)) holder = Uri.UnescapeDataString(o);
            }
            catch (RequestFailedException)
            {
            }

            throw new CheckpointLockedException(
                $"The checkpoint '{Location}' is in use by {holder}: it holds the lease on the 'lock' blob. Only one process may run a pipeline on a checkpoint. "
                + $"If that process crashed, its lease expires within {_options.LeaseDuration.TotalSeconds:F0} s; start again then.", e);
        }

        var lease = new HeldLease(this, client, owner, sent);
        string info = $"{owner}, process {Environment.ProcessId} on {Environment.MachineName}, since {DateTime.UtcNow:O}";
        await blob.SetMetadataAsync(new Dictionary<string, string> { ["owner"] = Uri.EscapeDataString(info) },
            new BlobRequestConditions { LeaseId = client.LeaseId }, ct).ConfigureAwait(false);
        lease.StartRenewing();
        return lease;
    }

    /// <summary>
    /// Writes only while the lease is known to be held: when the last renewal is older than a third of the
    /// lease (the background renewal is late, for example after a pause of this process), renews it first.
    /// If another instance took the lease meanwhile, the renewal fails and this process is fenced.
    /// </summary>
    private async Task EnsureLeaseAsync(CancellationToken ct)
    {
        if (_lease is not { } lease) return;
        if (lease.Released) throw new CheckpointFencedException($"The lock on checkpoint '{Location}' was released; this store writes nothing more.");
        if (lease.Lost is { } lost) throw lost;
        if (_options.Time.GetElapsedTime(lease.RenewedAt) < _options.LeaseDuration / 3) return;
        await lease.RenewAsync(ct).ConfigureAwait(false);
    }

    private BlobClient Blob(string name) => _container.GetBlobClient(_prefix + CheckpointNames.Check(name));

    /// <summary>
    /// Runs <paramref name="operation"/>, retrying transient failures with backoff (0.1 s doubling to 2 s) until
    /// <see cref="AzureBlobCheckpointStoreOptions.OutageLimit"/> has passed; other failures are reported at once.
    /// </summary>
    private async Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var delay = TimeSpan.FromMilliseconds(100);
        int attempts = 0;
        while (true)
        {
            attempts++;
            try
            {
                if (_containerReady is null || _containerReady.IsFaulted) _containerReady = _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
                await _containerReady.ConfigureAwait(false);
                return await operation(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                var elapsed = Stopwatch.GetElapsedTime(started);
                if (elapsed >= _options.OutageLimit)
                {
                    throw new CheckpointStoreUnavailableException(
                        $"The checkpoint store '{Location}' did not answer for {elapsed.TotalSeconds:F0} s while {what} ({attempts} attempts; last error: {Describe(e)}). "
                        + $"The batch in flight is not committed: start the pipeline again when the store is reachable. The limit is AzureBlobCheckpointStoreOptions.OutageLimit ({_options.OutageLimit.TotalSeconds:F0} s).", e);
                }

                // The last wait ends at the limit, for one more attempt there.
                var remaining = _options.OutageLimit - elapsed;
                await Task.Delay(delay < remaining ? delay : remaining, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
            catch (RequestFailedException e) when (e.Status is 401 or 403)
            {
                throw new IOException($"The checkpoint store '{Location}' refused {what}: {Describe(e)}. Check the connection string or credential and its permissions on the container.", e);
            }
        }
    }

    private static string Describe(Exception e) => e switch
    {
        RequestFailedException r => $"HTTP {r.Status} {r.ErrorCode}: {r.Message.Split('\n')[0]}",
        AggregateException a when a.InnerExceptions.Count > 0 => Describe(a.InnerExceptions[^1]),
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    /// <summary>Network failures, timeouts, throttling and server errors: the store may answer again.</summary>
    internal static bool IsTransient(Exception e) => e switch
    {
        RequestFailedException r => r.Status is 0 or 408 or 429 or >= 500 || (r.InnerException is { } inner && IsTransient(inner)),
        HttpRequestException or SocketException or IOException or TimeoutException => true,
        OperationCanceledException => true, // a request's own timeout (the caller's cancellation is excluded above)
        AggregateException a => a.InnerExceptions.All(IsTransient),
        _ => false,
    };

    /// <summary>The lease held on the <c>lock</c> blob, renewed every third of its duration until released.</summary>
    private sealed class HeldLease : IDisposable
    {
        private readonly AzureBlobCheckpointStore _store;
        private readonly BlobLeaseClient _client;
        private readonly CancellationTokenSource _stop = new();
        private readonly SemaphoreSlim _renewing = new(1, 1);
        private Task _loop = Task.CompletedTask;

        public HeldLease(AzureBlobCheckpointStore store, BlobLeaseClient client, string owner, long sentAt)
        {
            _store = store;
            _client = client;
            Owner = owner;
            RenewedAt = sentAt;
        }

        public string Owner { get; }

        /// <summary>When the last successful renewal (or the acquisition) was sent: the lease runs from no earlier than that.</summary>
        public long RenewedAt { get; private set; }

        public CheckpointFencedException? Lost { get; private set; }

        public bool Released { get; private set; }

        public void StartRenewing() => _loop = Task.Run(RenewLoopAsync);

        private async Task RenewLoopAsync()
        {
            var period = _store._options.LeaseDuration / 3;
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(period, _store._options.Time, _stop.Token).ConfigureAwait(false);
                    await RenewAsync(_stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (CheckpointFencedException)
                {
                    return;
                }
                catch (Exception e) when (IsTransient(e))
                {
                    // The store is not answering: the next renewal (or the next write's) tries again.
                }
            }
        }

        public async Task RenewAsync(CancellationToken ct)
        {
            await _renewing.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (Lost is { } lost) throw lost;
                long sent = _store._options.Time.GetTimestamp();
                try
                {
                    await _client.RenewAsync(cancellationToken: ct).ConfigureAwait(false);
                    RenewedAt = sent;
                }
                catch (RequestFailedException e) when (e.Status is 409 or 412)
                {
                    // Renewing works even after expiry unless another instance leased the blob since: it did.
                    Lost = new CheckpointFencedException(
                        $"This process ({Owner}) lost the lease on checkpoint '{_store.Location}': another instance took it over after this one stopped renewing "
                        + $"(for example during a pause longer than {_store._options.LeaseDuration.TotalSeconds:F0} s). It writes nothing more and stops; the other instance continues exactly.", e);
                    throw Lost;
                }
            }
            finally
            {
                _renewing.Release();
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
                // The loop ends on cancellation; nothing else it can raise matters once the lease is given up.
            }

            if (Lost is null)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(_store._options.RequestTimeout);
                    _client.ReleaseAsync(cancellationToken: timeout.Token).GetAwaiter().GetResult();
                }
                catch (Exception e) when (e is RequestFailedException || IsTransient(e))
                {
                    // Not released: the lease expires by itself after its duration.
                }
            }

            _stop.Dispose();
        }
    }
}
