using System.Text;
using PipelineDsl.Checkpointing;

namespace PipelineDsl.Runtime.Tests;

/// <summary>The local directory store's recycling of deleted files (see <see cref="LocalDirectoryCheckpointStore"/>).</summary>
public class CheckpointStoreTests
{
    private static string[] Spares(string folder) =>
        Directory.GetFiles(folder).Select(Path.GetFileName).Where(n => n!.StartsWith("." + DurableFile.SpareName, StringComparison.Ordinal)).ToArray()!;

    private static string[] Visible(string folder) =>
        Directory.GetFiles(folder).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).OrderBy(n => n, StringComparer.Ordinal).ToArray()!;

    [Fact]
    public async Task A_deleted_file_becomes_a_spare_that_the_next_write_reuses_truncated()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryCheckpointStore(dir.Path);
        await store.WriteAsync("offsets/1", Encoding.ASCII.GetBytes(new string('x', 5000)), durable: true, CancellationToken.None);
        await store.DeleteAsync("offsets/1", CancellationToken.None);

        string folder = Path.Combine(dir.Path, "offsets");
        Assert.Empty(await store.ListAsync("offsets", CancellationToken.None));
        Assert.Empty(Visible(folder));
        Assert.Single(Spares(folder));

        await store.WriteAsync("offsets/2", Encoding.ASCII.GetBytes("short"), durable: true, CancellationToken.None);
        Assert.Empty(Spares(folder));
        Assert.Equal(new[] { "2" }, Visible(folder));
        Assert.Equal("short", Encoding.ASCII.GetString((await store.ReadAsync("offsets/2", CancellationToken.None))!));
        Assert.Equal(new[] { "offsets/2" }, await store.ListAsync("offsets", CancellationToken.None));
    }

    [Fact]
    public async Task Large_files_are_deleted_and_spares_are_bounded_per_directory()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryCheckpointStore(dir.Path);
        await store.WriteAsync("state/1", new byte[(1 << 20) + 1], durable: false, CancellationToken.None);
        await store.DeleteAsync("state/1", CancellationToken.None);
        Assert.Empty(Directory.GetFiles(Path.Combine(dir.Path, "state")));

        for (int i = 0; i < 40; i++) await store.WriteAsync($"commits/{i}", new byte[] { (byte)i }, durable: false, CancellationToken.None);
        for (int i = 0; i < 40; i++) await store.DeleteAsync($"commits/{i}", CancellationToken.None);
        string folder = Path.Combine(dir.Path, "commits");
        Assert.Empty(Visible(folder));
        Assert.Equal(32, Spares(folder).Length);
        Assert.Equal(32, Directory.GetFiles(folder).Length);
    }

    [Fact]
    public async Task A_spare_removed_behind_the_stores_back_does_not_fail_the_write()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryCheckpointStore(dir.Path);
        await store.WriteAsync("offsets/1", new byte[] { 1, 2, 3 }, durable: true, CancellationToken.None);
        await store.DeleteAsync("offsets/1", CancellationToken.None);
        string folder = Path.Combine(dir.Path, "offsets");
        File.Delete(Path.Combine(folder, Spares(folder).Single()));

        await store.WriteAsync("offsets/2", new byte[] { 4, 5 }, durable: true, CancellationToken.None);
        Assert.Equal(new byte[] { 4, 5 }, await store.ReadAsync("offsets/2", CancellationToken.None));
        Assert.Equal(new[] { "2" }, Visible(folder));
        Assert.Empty(Spares(folder));
    }

    [Fact]
    public async Task Releasing_the_lock_removes_the_spares_and_a_new_start_removes_any_left_by_a_crash()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryCheckpointStore(dir.Path);
        string folder = Path.Combine(dir.Path, "commits");
        using (store.AcquireLock("test"))
        {
            await store.WriteAsync("commits/1", new byte[] { 1 }, durable: false, CancellationToken.None);
            await store.DeleteAsync("commits/1", CancellationToken.None);
            Assert.Single(Spares(folder));
        }

        Assert.Empty(Directory.GetFiles(folder));

        // A crashed owner never releases its lock: its spares are temporary files, which the next start removes.
        await store.WriteAsync("commits/2", new byte[] { 2 }, durable: false, CancellationToken.None);
        await store.DeleteAsync("commits/2", CancellationToken.None);
        Assert.Single(Spares(folder));
        using (new LocalDirectoryCheckpointStore(dir.Path).AcquireLock("next start"))
        {
        }

        Assert.Empty(Directory.GetFiles(folder));
    }
}
