using System.Diagnostics;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using PipelineDsl.Checkpointing;
using PipelineDsl.Azure.Testing;
using PipelineDsl.Runtime.Tests;

namespace PipelineDsl.Azure.Tests;

/// <summary>The store contract shared with the local and in-memory stores, unchanged, against Azurite.</summary>
public sealed class AzureBlobCheckpointStoreContract : CheckpointStoreContract, IClassFixture<AzuriteFixture>
{
    public AzureBlobCheckpointStoreContract(AzuriteFixture azurite) =>
        Store = AzureBlobCheckpointStore.FromConnectionString(azurite.Server.ConnectionString, "c" + Guid.NewGuid().ToString("N"), "pipelines/contract");

    protected override ICheckpointStore Store { get; }
}

public sealed class AzureBlobCheckpointStoreTests : IClassFixture<AzuriteFixture>
{
    private readonly AzuriteServer _azurite;
    private readonly string _container = "c" + Guid.NewGuid().ToString("N");

    public AzureBlobCheckpointStoreTests(AzuriteFixture azurite) => _azurite = azurite.Server;

    private AzureBlobCheckpointStore Store(string prefix = "job", AzureBlobCheckpointStoreOptions? options = null) =>
        AzureBlobCheckpointStore.FromConnectionString(_azurite.ConnectionString, _container, prefix, options);

    private BlobContainerClient Container => new(_azurite.ConnectionString, _container, new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06));

    [Fact]
    public async Task Entries_are_blobs_under_the_prefix_and_a_folder_lists_only_its_direct_children()
    {
        var store = Store("pipelines/clicks");
        await store.WriteAsync("offsets/0000000000000000001", new byte[] { 1, 2, 3 }, durable: true, default);
        await store.WriteAsync("offsets/deeper/0000000000000000001", new byte[] { 4 }, durable: true, default);
        await Store("pipelines/other").WriteAsync("offsets/0000000000000000002", new byte[] { 5 }, durable: true, default);

        var blobs = new List<string>();
        await foreach (var blob in Container.GetBlobsAsync()) blobs.Add(blob.Name);
        Assert.Contains("pipelines/clicks/offsets/0000000000000000001", blobs);
        Assert.Equal(new[] { "offsets/0000000000000000001" }, await store.ListAsync("offsets", default));
        Assert.Equal(new byte[] { 1, 2, 3 }, await store.ReadAsync("offsets/0000000000000000001", default));
        Assert.Equal($"http://127.0.0.1:{_azurite.Port}/devstoreaccount1/{_container}/pipelines/clicks/", store.Location);
    }

    [Fact]
    public void A_second_instance_is_refused_the_lock_with_the_holders_name_until_it_is_released()
    {
        var first = Store().AcquireLock("pipeline 'clicks' (first)");
        var second = Store();
        var refused = Assert.Throws<CheckpointLockedException>(() => second.AcquireLock("pipeline 'clicks' (second)"));
        Assert.Contains("pipeline 'clicks' (first)", refused.Message);
        Assert.Contains(second.Location, refused.Message);
        Assert.Contains("expires within 15 s", refused.Message);

        // Another prefix is another checkpoint, with its own lock.
        using (Store("other-job").AcquireLock("other"))
        {
        }

        first.Dispose();
        using var taken = second.AcquireLock("pipeline 'clicks' (second)");
    }

    [Fact]
    public async Task A_paused_holder_whose_lease_was_taken_over_is_fenced_and_writes_nothing()
    {
        var clock = new ManualClock();
        var zombie = Store(options: new AzureBlobCheckpointStoreOptions { Time = clock });
        using var zombieLock = zombie.AcquireLock("zombie");
        await zombie.WriteAsync("offsets/0000000000000000001", new byte[] { 1 }, durable: true, default);

        // The holder stops (SIGSTOP, a long GC pause): its lease runs out and another instance takes the checkpoint.
        // Breaking the lease stands in for its expiry; the paused process's clock moves past the lease.
        await Container.GetBlobClient("job/lock").GetBlobLeaseClient().BreakAsync(TimeSpan.Zero);
        var successor = Store();
        using var successorLock = successor.AcquireLock("successor");
        clock.Advance(TimeSpan.FromSeconds(20));

        var fenced = await Assert.ThrowsAsync<CheckpointFencedException>(() => zombie.WriteAsync("offsets/0000000000000000002", new byte[] { 2 }, durable: true, default));
        Assert.Contains("lost the lease", fenced.Message);
        Assert.Contains("zombie", fenced.Message);
        await Assert.ThrowsAsync<CheckpointFencedException>(() => zombie.DeleteAsync("offsets/0000000000000000001", default));
        Assert.Null(await successor.ReadAsync("offsets/0000000000000000002", default));
        Assert.NotNull(await successor.ReadAsync("offsets/0000000000000000001", default));

        // The successor writes on.
        await successor.WriteAsync("offsets/0000000000000000002", new byte[] { 3 }, durable: true, default);
    }

    [Fact]
    public async Task A_paused_holder_whose_lease_nobody_took_renews_it_before_writing_and_continues()
    {
        var clock = new ManualClock();
        var store = Store(options: new AzureBlobCheckpointStoreOptions { Time = clock });
        using var held = store.AcquireLock("paused");
        clock.Advance(TimeSpan.FromSeconds(20));
        await store.WriteAsync("commits/0000000000000000001", new byte[] { 7 }, durable: true, default);
        Assert.Equal(new byte[] { 7 }, await store.ReadAsync("commits/0000000000000000001", default));
        Assert.Throws<CheckpointLockedException>(() => Store().AcquireLock("intruder"));
    }

    [Fact]
    public async Task An_outage_longer_than_the_limit_fails_clearly_and_a_shorter_one_is_ridden_out()
    {
        // A server of this test's own: it is stopped and restarted.
        using var server = AzuriteServer.Start();
        var store = AzureBlobCheckpointStore.FromConnectionString(server.ConnectionString, "outage", "job",
            new AzureBlobCheckpointStoreOptions { OutageLimit = TimeSpan.FromSeconds(3), RequestTimeout = TimeSpan.FromSeconds(2) });
        await store.WriteAsync("offsets/0000000000000000001", new byte[] { 1 }, durable: true, default);

        server.Stop();
        var watch = Stopwatch.StartNew();
        var failure = await Assert.ThrowsAsync<CheckpointStoreUnavailableException>(() => store.WriteAsync("offsets/0000000000000000002", new byte[] { 2 }, durable: true, default));
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(30));
        Assert.Contains(store.Location, failure.Message);
        Assert.Contains("OutageLimit", failure.Message);
        Assert.Contains("not committed", failure.Message);
        Assert.True(failure.IsTransient);

        // A store with a longer limit waits through a 4 s outage and then writes; nothing written before is lost.
        var patient = AzureBlobCheckpointStore.FromConnectionString(server.ConnectionString, "outage", "job",
            new AzureBlobCheckpointStoreOptions { OutageLimit = TimeSpan.FromSeconds(60), RequestTimeout = TimeSpan.FromSeconds(2) });
        var write = patient.WriteAsync("offsets/0000000000000000002", new byte[] { 2 }, durable: true, default);
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.False(write.IsCompleted);
        server.Restart();
        await write.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(new byte[] { 2 }, await patient.ReadAsync("offsets/0000000000000000002", default));
        Assert.Equal(new byte[] { 1 }, await patient.ReadAsync("offsets/0000000000000000001", default));
    }

    [Fact]
    public void Options_out_of_range_are_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => Store(options: new AzureBlobCheckpointStoreOptions { LeaseDuration = TimeSpan.FromSeconds(5) }));
        Assert.Contains("LeaseDuration", e.Message);
        Assert.Contains("15 to 60", e.Message);
        Assert.Contains("OutageLimit", Assert.Throws<ArgumentException>(() => Store(options: new AzureBlobCheckpointStoreOptions { OutageLimit = TimeSpan.Zero })).Message);
        Assert.Throws<ArgumentException>(() => Store("../escape"));
    }

    /// <summary>A clock that moves only when told: the store's view of time during a simulated pause.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = TimeProvider.System.GetTimestamp();

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, (long)(by.TotalSeconds * TimestampFrequency));

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public override long TimestampFrequency => TimeProvider.System.TimestampFrequency;
    }
}

/// <summary>One Azurite for the tests of a class; each test uses its own container.</summary>
public sealed class AzuriteFixture : IDisposable
{
    public AzuriteServer Server { get; } = AzuriteServer.Start();

    public void Dispose() => Server.Dispose();
}
