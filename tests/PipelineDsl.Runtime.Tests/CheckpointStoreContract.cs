using PipelineDsl.Checkpointing;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The contract every <see cref="ICheckpointStore"/> keeps, run against each store (as Spark's
/// CheckpointFileManagerSuite runs one suite against every checkpoint file manager): whole-object writes and
/// reads, listing in order and by folder, deletes, name rules, large objects, concurrent writers, the lock.
/// A new store derives from this class and passes it unchanged (the Azure store's tests link this file).
/// </summary>
public abstract class CheckpointStoreContract : IDisposable
{
    protected abstract ICheckpointStore Store { get; }

    /// <summary>Whether the store records who holds its lock (<see cref="ICheckpointStore.DescribeLockHolderAsync"/>).</summary>
    protected virtual bool RecordsLockHolder => true;

    public virtual void Dispose()
    {
    }

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task A_write_is_read_back_whole_and_an_overwrite_replaces_it_whole()
    {
        Assert.Null(await Store.ReadAsync("offsets/0000000000000000001", default));
        await Store.WriteAsync("offsets/0000000000000000001", Bytes(1000, 1), durable: true, default);
        Assert.Equal(Bytes(1000, 1), await Store.ReadAsync("offsets/0000000000000000001", default));
        await Store.WriteAsync("offsets/0000000000000000001", Bytes(10, 2), durable: false, default); // shorter: nothing of the old stays
        Assert.Equal(Bytes(10, 2), await Store.ReadAsync("offsets/0000000000000000001", default));
        await Store.WriteAsync("metadata", Array.Empty<byte>(), durable: true, default);
        Assert.Equal(Array.Empty<byte>(), await Store.ReadAsync("metadata", default));
    }

    [Fact]
    public async Task The_store_keeps_its_own_copy_of_what_was_written()
    {
        var buffer = Bytes(100, 3);
        await Store.WriteAsync("state/0000000000000000005", buffer, durable: true, default);
        buffer[0] ^= 0xff;
        var read = await Store.ReadAsync("state/0000000000000000005", default);
        Assert.NotEqual(buffer[0], read![0]);
        read[1] ^= 0xff;
        Assert.Equal(Bytes(100, 3), await Store.ReadAsync("state/0000000000000000005", default));
    }

    [Fact]
    public async Task Listing_gives_the_direct_children_of_a_folder_in_ordinal_order()
    {
        foreach (var n in new[] { 10, 2, 1, 30 }) await Store.WriteAsync($"commits/{n:D19}", Bytes(5, n), durable: false, default);
        await Store.WriteAsync("offsets/0000000000000000001", Bytes(5, 9), durable: true, default);
        await Store.WriteAsync("metadata", Bytes(5, 9), durable: true, default);
        Assert.Equal(new[] { 1, 2, 10, 30 }.Select(n => $"commits/{n:D19}"), await Store.ListAsync("commits", default));
        Assert.Equal(new[] { "offsets/0000000000000000001" }, await Store.ListAsync("offsets", default));
        Assert.Empty(await Store.ListAsync("state", default));
    }

    [Fact]
    public async Task A_delete_removes_a_name_and_deleting_a_missing_name_is_no_error()
    {
        await Store.WriteAsync("commits/0000000000000000001", Bytes(5, 1), durable: false, default);
        await Store.DeleteAsync("commits/0000000000000000001", default);
        await Store.DeleteAsync("commits/0000000000000000001", default);
        await Store.DeleteAsync("commits/0000000000000000099", default);
        Assert.Null(await Store.ReadAsync("commits/0000000000000000001", default));
        Assert.Empty(await Store.ListAsync("commits", default));
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("/etc/passwd")]
    [InlineData("state/../../outside")]
    [InlineData("")]
    public async Task A_name_outside_the_checkpoint_is_refused(string name)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.WriteAsync(name, Bytes(1, 1), durable: true, default));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.ReadAsync(name, default));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.DeleteAsync(name, default));
    }

    [Fact]
    public async Task A_large_object_is_written_and_read_whole()
    {
        var big = Bytes(48 << 20, 7); // 48 MiB, more than any buffer in between
        await Store.WriteAsync("state/0000000000000000042", big, durable: true, default);
        Assert.Equal(big, await Store.ReadAsync("state/0000000000000000042", default));
    }

    [Fact]
    public async Task Concurrent_writers_never_mix_contents_and_the_store_ends_with_one_whole_write()
    {
        // Many writers of one name (the last whole write wins; no reader ever sees a mix) and of other names at once.
        var versions = Enumerable.Range(0, 16).Select(i => Bytes(64 * 1024 + i, 100 + i)).ToArray();
        var readers = Task.Run(async () =>
        {
            for (int r = 0; r < 200; r++)
            {
                var seen = await Store.ReadAsync("state/0000000000000000001", default);
                if (seen is not null) Assert.Contains(versions, v => v.AsSpan().SequenceEqual(seen));
            }
        });
        await Task.WhenAll(versions.Select((v, i) => Task.Run(() => Store.WriteAsync("state/0000000000000000001", v, durable: true, default)))
            .Concat(Enumerable.Range(0, 16).Select(i => Task.Run(() => Store.WriteAsync($"commits/{i:D19}", Bytes(100, i), durable: false, default)))));
        await readers;
        var final = await Store.ReadAsync("state/0000000000000000001", default);
        Assert.Contains(versions, v => v.AsSpan().SequenceEqual(final));
        Assert.Equal(16, (await Store.ListAsync("commits", default)).Count);
    }

    [Fact]
    public async Task A_create_writes_only_a_new_name_and_of_concurrent_creates_exactly_one_wins()
    {
        Assert.True(await Store.TryCreateAsync("offsets/0000000000000000003", Bytes(100, 1), durable: true, default));
        Assert.False(await Store.TryCreateAsync("offsets/0000000000000000003", Bytes(100, 2), durable: true, default));
        Assert.Equal(Bytes(100, 1), await Store.ReadAsync("offsets/0000000000000000003", default));
        Assert.True(await Store.TryCreateAsync("commits/0000000000000000003", Bytes(10, 3), durable: false, default));

        var contenders = Enumerable.Range(0, 16).Select(i => Bytes(4096 + i, 200 + i)).ToArray();
        var results = await Task.WhenAll(contenders.Select(c => Task.Run(() => Store.TryCreateAsync("offsets/0000000000000000004", c, durable: true, default))));
        Assert.Equal(1, results.Count(r => r));
        Assert.Equal(contenders[Array.IndexOf(results, true)], await Store.ReadAsync("offsets/0000000000000000004", default));
        Assert.Equal(new[] { "offsets/0000000000000000003", "offsets/0000000000000000004" }, await Store.ListAsync("offsets", default)); // no temporary left visible
    }

    [Fact]
    public void The_lock_is_exclusive_until_released_and_releasing_twice_is_harmless()
    {
        var first = Store.AcquireLock("first run");
        var e = Assert.Throws<CheckpointLockedException>(() => Store.AcquireLock("second run"));
        Assert.Contains(Store.Location, e.Message);
        first.Dispose();
        first.Dispose();
        using var second = Store.AcquireLock("second run");
    }

    [Fact]
    public async Task The_lock_holder_is_described_as_the_store_records_it()
    {
        Assert.Null(await Store.DescribeLockHolderAsync(default)); // never taken
        using (Store.AcquireLock("first run"))
        {
            var holder = await Store.DescribeLockHolderAsync(default);
            if (!RecordsLockHolder)
            {
                Assert.Null(holder);
                return;
            }

            Assert.Contains("first run", holder);
        }

        using var second = Store.AcquireLock("second run");
        Assert.Contains("second run", await Store.DescribeLockHolderAsync(default));
    }
}
