using System.Diagnostics;
using Azure.Storage.Blobs;
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
    public void A_second_instance_is_refused_the_lock_while_the_holders_heartbeat_moves_and_gets_it_at_once_when_released()
    {
        var first = Store().AcquireLock("pipeline 'clicks' (first)");
        var second = Store();
        var watch = Stopwatch.StartNew();
        var refused = Assert.Throws<CheckpointLockedException>(() => second.AcquireLock("pipeline 'clicks' (second)"));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"a live holder is recognised by its heartbeat within TakeoverAfter; it took {watch.Elapsed}");
        Assert.Contains("pipeline 'clicks' (first)", refused.Message);
        Assert.Contains("epoch 1", refused.Message);
        Assert.Contains(second.Location, refused.Message);

        // Another prefix is another checkpoint, with its own lock.
        using (Store("other-job").AcquireLock("other"))
        {
        }

        first.Dispose();
        watch.Restart();
        using var taken = second.AcquireLock("pipeline 'clicks' (second)");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"a released lock is taken at once; it took {watch.Elapsed}");
    }

    [Fact]
    public async Task A_holder_whose_heartbeat_stopped_is_taken_over_after_TakeoverAfter_and_is_fenced_when_it_wakes()
    {
        // The holder's timers never fire and its clock moves only when told: a process stopped with SIGSTOP.
        var pausedClock = new PausedClock();
        var zombie = Store(options: new AzureBlobCheckpointStoreOptions { Time = pausedClock, TakeoverAfter = TimeSpan.FromSeconds(2) });
        using var zombieLock = zombie.AcquireLock("zombie");
        await zombie.WriteAsync("offsets/0000000000000000001", new byte[] { 1 }, durable: true, default);

        var successor = Store(options: new AzureBlobCheckpointStoreOptions { TakeoverAfter = TimeSpan.FromSeconds(2) });
        var watch = Stopwatch.StartNew();
        using var successorLock = successor.AcquireLock("successor");
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(10));
        await successor.WriteAsync("offsets/0000000000000000002", new byte[] { 2 }, durable: true, default);

        // The zombie wakes: its last heartbeat is old, so it beats before writing, and finds the lock taken.
        pausedClock.Advance(TimeSpan.FromSeconds(3));
        var fenced = await Assert.ThrowsAsync<CheckpointFencedException>(() => zombie.WriteAsync("offsets/0000000000000000002", new byte[] { 9 }, durable: true, default));
        Assert.Contains("zombie, epoch 1", fenced.Message);
        Assert.Contains("successor", fenced.Message);
        Assert.Contains("epoch 2", fenced.Message);
        await Assert.ThrowsAsync<CheckpointFencedException>(() => zombie.DeleteAsync("offsets/0000000000000000001", default));
        Assert.Equal(new byte[] { 2 }, await successor.ReadAsync("offsets/0000000000000000002", default));
        Assert.NotNull(await successor.ReadAsync("offsets/0000000000000000001", default));

        // Every blob carries the epoch of the holder that wrote it.
        Assert.Equal("1", (await Container.GetBlobClient("job/offsets/0000000000000000001").GetPropertiesAsync()).Value.Metadata["epoch"]);
        Assert.Equal("2", (await Container.GetBlobClient("job/offsets/0000000000000000002").GetPropertiesAsync()).Value.Metadata["epoch"]);
    }

    [Fact]
    public async Task A_paused_holder_that_nobody_took_over_beats_before_writing_and_continues()
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
    public async Task A_damaged_lock_blob_is_reported_not_overwritten()
    {
        await Container.CreateIfNotExistsAsync();
        await Container.GetBlobClient("job/lock").UploadAsync(BinaryData.FromString("not a lock"));
        var e = Assert.Throws<CheckpointCorruptException>(() => Store().AcquireLock("someone"));
        Assert.Contains("job/lock", e.Message);
        Assert.Equal("not a lock", (await Container.GetBlobClient("job/lock").DownloadContentAsync()).Value.Content.ToString());
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
        var e = Assert.Throws<ArgumentException>(() => Store(options: new AzureBlobCheckpointStoreOptions { TakeoverAfter = TimeSpan.FromMilliseconds(500) }));
        Assert.Contains("TakeoverAfter", e.Message);
        Assert.Contains("at least 1 second", e.Message);
        Assert.Contains("OutageLimit", Assert.Throws<ArgumentException>(() => Store(options: new AzureBlobCheckpointStoreOptions { OutageLimit = TimeSpan.Zero })).Message);
        Assert.Throws<ArgumentException>(() => Store("../escape"));
        var badName = Assert.Throws<ArgumentException>(() => AzureBlobCheckpointStore.FromConnectionString(_azurite.ConnectionString, "ha", "job"));
        Assert.Contains("'ha' is not a valid Azure Blob Storage container name", badName.Message);
        Assert.Throws<ArgumentException>(() => AzureBlobCheckpointStore.FromConnectionString(_azurite.ConnectionString, "Upper-Case", "job"));
    }

    /// <summary>A process stopped with SIGSTOP, as the store sees it: timers that never fire, a clock that moves only when told.</summary>
    private sealed class PausedClock : TimeProvider
    {
        private long _ticks = TimeProvider.System.GetTimestamp();

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, (long)(by.TotalSeconds * TimestampFrequency));

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public override long TimestampFrequency => TimeProvider.System.TimestampFrequency;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new StoppedTimer();

        private sealed class StoppedTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    /// <summary>A clock that moves only when told (its timers are real): the store's view of time during a simulated pause.</summary>
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

/// <summary>
/// The lock blob's record is read by every later build (replicas of two builds run side by side during an
/// upgrade): this text, as the first build wrote it, is read forever.
/// </summary>
public sealed class LockRecordFormatTests
{
    private const string WrittenBySession9 = """{"epoch":3,"owner":"pipeline 'clicks-per-user', process 42 on host-a","heartbeat":17,"released":false}""";

    [Fact]
    public void The_first_lock_record_layout_is_read()
    {
        var record = AzureBlobCheckpointStore.LockRecord.Parse(System.Text.Encoding.UTF8.GetBytes(WrittenBySession9), "job/lock");
        Assert.Equal(new AzureBlobCheckpointStore.LockRecord(3, "pipeline 'clicks-per-user', process 42 on host-a", 17, false), record);
    }

    [Fact]
    public void The_lock_record_is_written_in_that_layout()
    {
        var written = System.Text.Encoding.UTF8.GetString(new AzureBlobCheckpointStore.LockRecord(3, "pipeline 'clicks-per-user', process 42 on host-a", 17, false).ToBytes());
        using var json = System.Text.Json.JsonDocument.Parse(written);
        Assert.Equal(new[] { "epoch", "owner", "heartbeat", "released" }, json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(AzureBlobCheckpointStore.LockRecord.Parse(System.Text.Encoding.UTF8.GetBytes(WrittenBySession9), "job/lock"),
            AzureBlobCheckpointStore.LockRecord.Parse(System.Text.Encoding.UTF8.GetBytes(written), "job/lock"));
    }
}
