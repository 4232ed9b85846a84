using PipelineDsl.Checkpointing;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// <see cref="CheckpointReader"/>: the read-only view the CLI and users share. It must agree with what a
/// restore uses (same files trusted, same ones skipped), and never change the checkpoint.
/// </summary>
public class CheckpointReaderTests
{
    private static List<Event> Events(int count) => Enumerable.Range(0, count).Select(i => new Event("u" + (i % 5), i + 1)).ToList();

    /// <summary>Runs 4 batches of 10 records over a fresh directory: snapshots after batches 1 and 3.</summary>
    private static async Task<(string Checkpoint, CollectingSink<Total?> Sink)> RunAsync(TempDir dir, int records = 40)
    {
        var source = new MemorySource<Event>();
        source.Add(0, Events(records));
        var sink = new CollectingSink<Total?>();
        string checkpoint = dir.Sub("checkpoint");
        await new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions
            {
                CheckpointDirectory = checkpoint,
                Trigger = TriggerMode.AvailableNow,
                MaxRecordsPerPartition = 10,
                CheckpointInterval = 2,
                RetainedSnapshots = 5,
                Parallelism = 1,
            })
            .BindSource(RunningTotals.Events(), source)
            .BindSink(RunningTotals.Out(), sink)
            .RunAsync();
        return (checkpoint, sink);
    }

    private static Dictionary<string, byte[]> Contents(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

    [Fact]
    public async Task Lists_the_batches_positions_and_state_a_run_left()
    {
        using var dir = new TempDir();
        var (checkpoint, _) = await RunAsync(dir);

        var reader = await CheckpointReader.OpenDirectoryAsync(checkpoint);
        Assert.Equal(RunningTotals.Definition.PipelineId, reader.PipelineId);
        Assert.NotNull(reader.CheckpointId);
        Assert.Equal(new long[] { 0, 1, 2, 3 }, reader.OffsetBatches);
        Assert.Equal(new long[] { 0, 1, 2, 3 }, reader.CommitBatches);
        Assert.Equal(new long[] { 1, 3 }, reader.SnapshotBatches);

        var committed = await reader.ReadCommittedPositionsAsync();
        Assert.NotNull(committed);
        Assert.Equal(3, committed!.AfterBatch);
        Assert.Empty(committed.Skipped);
        Assert.Equal(40, committed.Positions[RunningTotals.Events().Id]["0"]);

        var snapshot = await reader.ReadNewestSnapshotAsync();
        Assert.NotNull(snapshot);
        Assert.Equal(3, snapshot!.Batch);
        Assert.Equal(40, snapshot.Positions[RunningTotals.Events().Id]["0"]);
        var state = Assert.Single(snapshot.Operators);
        Assert.Equal(5, state.Value.EntryCount); // five users
        Assert.True(state.Value.SizeBytes > 0);
        Assert.Equal(RunningTotals.Definition.Manifest.Find(state.Key)!.StateSchema!.Fingerprint, state.Value.Fingerprint);
        Assert.Equal(RunningTotals.Definition.Manifest.Json, snapshot.Manifest!.Json);
    }

    [Fact]
    public async Task Skips_a_damaged_or_renamed_snapshot_and_offsets_file_as_a_restore_would()
    {
        using var dir = new TempDir();
        var (checkpoint, _) = await RunAsync(dir);
        string Name(string folder, long batch) => Path.Combine(checkpoint, folder, batch.ToString("D19"));

        // The newest snapshot damaged: the reader falls back to the one before, as a restore does.
        var bytes = File.ReadAllBytes(Name("state", 3));
        bytes[^3] ^= 0x40;
        File.WriteAllBytes(Name("state", 3), bytes);
        var reader = await CheckpointReader.OpenDirectoryAsync(checkpoint);
        Assert.Equal(1, (await reader.ReadNewestSnapshotAsync())!.Batch);

        // A snapshot re-sealed under another batch's name is foreign: not used either.
        CheckpointTestFiles.Reseal(Name("state", 1), "snapshot", body => body, batch: 3);
        File.Copy(Name("state", 1), Name("state", 3), overwrite: true);
        File.Delete(Name("state", 1));
        reader = await CheckpointReader.OpenDirectoryAsync(checkpoint);
        Assert.Null(await reader.ReadNewestSnapshotAsync());

        // The newest offsets file damaged: the committed positions come from the batch before, and say why.
        bytes = File.ReadAllBytes(Name("offsets", 3));
        bytes[^2] ^= 0x01;
        File.WriteAllBytes(Name("offsets", 3), bytes);
        var committed = await reader.ReadCommittedPositionsAsync();
        Assert.Equal(2, committed!.AfterBatch);
        Assert.Equal(30, committed.Positions[RunningTotals.Events().Id]["0"]);
        Assert.Contains(Path.Combine("offsets", 3L.ToString("D19")), Assert.Single(committed.Skipped));
    }

    [Fact]
    public async Task Never_writes_to_the_checkpoint()
    {
        using var dir = new TempDir();
        var (checkpoint, _) = await RunAsync(dir);
        var before = Contents(checkpoint);

        var reader = await CheckpointReader.OpenDirectoryAsync(checkpoint);
        await reader.ReadNewestSnapshotAsync();
        await reader.ReadCommittedPositionsAsync();

        var after = Contents(checkpoint);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (file, content) in before) Assert.True(content.AsSpan().SequenceEqual(after[file]), $"{file} changed");
    }

    [Fact]
    public async Task Refuses_what_is_not_a_checkpoint_with_a_clear_error()
    {
        using var dir = new TempDir();
        var missing = await Assert.ThrowsAsync<DirectoryNotFoundException>(() => CheckpointReader.OpenDirectoryAsync(dir.Sub("nope")));
        Assert.Contains("does not exist", missing.Message);
        Assert.False(Directory.Exists(dir.Sub("nope"))); // looking did not create it

        Directory.CreateDirectory(dir.Sub("empty"));
        var empty = await Assert.ThrowsAsync<CheckpointMismatchException>(() => CheckpointReader.OpenDirectoryAsync(dir.Sub("empty")));
        Assert.Contains("has no metadata file: it is not a PipelineDsl checkpoint", empty.Message);

        var (checkpoint, _) = await RunAsync(dir);
        var metadata = File.ReadAllBytes(Path.Combine(checkpoint, "metadata"));
        metadata[^1] ^= 0x20;
        File.WriteAllBytes(Path.Combine(checkpoint, "metadata"), metadata);
        var damaged = await Assert.ThrowsAsync<CheckpointMismatchException>(() => CheckpointReader.OpenDirectoryAsync(checkpoint));
        Assert.Contains("damaged metadata file", damaged.Message);
    }

    [Fact]
    public async Task Works_on_any_store()
    {
        var store = new InMemoryCheckpointStore();
        var source = new MemorySource<Event>();
        source.Add(0, Events(25));
        await new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions { CheckpointStore = store, Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 10, Parallelism = 1 })
            .BindSource(RunningTotals.Events(), source)
            .BindSink(RunningTotals.Out(), new CollectingSink<Total?>())
            .RunAsync();

        var reader = await CheckpointReader.OpenAsync(store);
        Assert.Equal(new long[] { 0, 1, 2 }, reader.CommitBatches);
        Assert.Equal(25, (await reader.ReadCommittedPositionsAsync())!.Positions[RunningTotals.Events().Id]["0"]);
        Assert.Equal(2, (await reader.ReadNewestSnapshotAsync())!.Batch); // the final snapshot of a stopped run
    }
}
