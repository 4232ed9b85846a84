using PipelineDsl.Checkpointing;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// A batch's offsets and commit files are created, never replaced: a file of the batch already written by another
/// process (the new holder, while this one was paused) fences this one; the same bytes again (a retried write whose
/// first attempt landed) and a damaged file (which recovery never trusted) are not conflicts.
/// </summary>
public sealed class CreateOnlyLogTests
{
    private static OffsetRecord Plan(long batch, long to) => new(batch, 1_000, new SortedDictionary<string, SortedDictionary<string, PartitionRange>>(StringComparer.Ordinal)
    {
        ["events"] = new(StringComparer.Ordinal) { ["0"] = new PartitionRange(0, to) },
    });

    private static async Task<CheckpointLog> NewLogAsync(ICheckpointStore store)
    {
        var log = new CheckpointLog(store, "running-totals");
        await log.CreateMetadataAsync(RunningTotals.Definition.Manifest.Json, default);
        return log;
    }

    [Fact]
    public async Task Offsets_written_by_another_process_fence_this_one_and_are_kept()
    {
        var store = new InMemoryCheckpointStore();
        var log = await NewLogAsync(store);
        await log.WriteOffsetsAsync(Plan(0, 10), default);
        await log.WriteOffsetsAsync(Plan(0, 10), default); // the same bytes: an earlier attempt of this write landed

        var fenced = await Assert.ThrowsAsync<CheckpointFencedException>(() => log.WriteOffsetsAsync(Plan(0, 20), default));
        Assert.Contains("offsets/0000000000000000000", fenced.Message);
        Assert.Contains("another process", fenced.Message);
        Assert.Equal(10, (await log.ReadOffsetsAsync(CheckpointLog.Name("offsets", 0), default)).Sources["events"]["0"].To);
    }

    [Fact]
    public async Task A_commit_written_by_another_process_fences_this_one_and_a_damaged_one_is_replaced()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryCheckpointStore(dir.Sub("checkpoint"));
        var log = await NewLogAsync(store);
        var buffers = new CommitBuffers();
        await log.WriteCommitAsync(new CommitRecord(3, 111, 5), null, buffers, default);
        var fenced = await Assert.ThrowsAsync<CheckpointFencedException>(() => log.WriteCommitAsync(new CommitRecord(3, 222, 5), null, buffers, default));
        Assert.Contains("commits/0000000000000000003", fenced.Message);

        await store.WriteAsync(CheckpointLog.Name("commits", 4), "not a checkpoint file"u8.ToArray(), durable: false, default);
        await log.WriteCommitAsync(new CommitRecord(4, 333, 5), null, buffers, default);
        Assert.True(await log.IsValidCommitAsync(CheckpointLog.Name("commits", 4), default));
    }
}
