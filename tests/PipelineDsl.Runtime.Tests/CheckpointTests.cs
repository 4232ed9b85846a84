using PipelineDsl.Checkpointing;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>Restore, replay and every kind of damage to a checkpoint, run in process.</summary>
public class CheckpointTests
{
    private static PipelineRunnerOptions Options(TempDir dir, int interval = 3, bool deltas = true) => new()
    {
        WriteStateDeltas = deltas,
        CheckpointDirectory = dir.Sub("checkpoint"),
        Trigger = TriggerMode.AvailableNow,
        MaxRecordsPerPartition = 10,
        CheckpointInterval = interval,
        RetainedSnapshots = 2,
        Parallelism = 2,
    };

    private static List<Event> Events(int from, int count) =>
        Enumerable.Range(from, count).Select(i => new Event("u" + (i % 7), i % 13 + 1)).ToList();

    private static PipelineRunner Runner(TempDir dir, MemorySource<Event> source, ISinkConnector<Total?> sink, int interval = 3, bool deltas = true) =>
        new PipelineRunner(RunningTotals.Definition, Options(dir, interval, deltas))
            .BindSource(RunningTotals.Events(), source)
            .BindSink(RunningTotals.Out(), sink);

    /// <summary>One uninterrupted run over the same data: what every recovered run must reproduce.</summary>
    private static async Task<IReadOnlyDictionary<long, List<Total?>>> Uninterrupted(int records)
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, records));
        var sink = new CollectingSink<Total?>();
        await Runner(dir, source, sink).RunAsync();
        return sink.Batches;
    }

    private static string CheckpointFile(TempDir dir, string folder, long batch) =>
        Path.Combine(dir.Sub("checkpoint"), folder, batch.ToString("D19"));

    [Fact]
    public async Task A_second_run_continues_where_the_first_stopped_with_the_same_output()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        var sink = new CollectingSink<Total?>();
        // 50 records with 10 per batch: the first run ends on a batch boundary of the uninterrupted run.
        source.Add(0, Events(0, 50));
        var first = await Runner(dir, source, sink).RunAsync();
        Assert.False(first.Restored);
        source.Add(0, Events(50, 50));
        var second = await Runner(dir, source, sink).RunAsync();
        Assert.True(second.Restored);
        Assert.Equal(4, second.RestoredFromBatch); // the final snapshot of the first run
        Assert.Equal(0, second.BatchesReplayed);
        Assert.Equal(await Uninterrupted(100), sink.Batches);
    }

    [Fact]
    public async Task A_crash_before_commit_reruns_the_batch_with_its_logged_ranges()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 100));
        var failing = new FailingSink(failAtBatch: 6);
        var e = await Assert.ThrowsAsync<PipelineExecutionException>(() => Runner(dir, source, failing).RunAsync());
        Assert.Contains("Sink 'out' failed to write batch 6", e.Message);
        Assert.True(File.Exists(CheckpointFile(dir, "offsets", 6)));
        Assert.False(File.Exists(CheckpointFile(dir, "commits", 6)));

        // More data arrives meanwhile: batch 6 must still read exactly its logged range.
        source.Add(0, Events(100, 30));
        var sink = new CollectingSink<Total?>();
        foreach (var (batch, records) in failing.Inner.Batches) await sink.WriteBatchAsync(batch, records, default);
        var summary = await Runner(dir, source, sink).RunAsync();
        Assert.Equal(5, summary.RestoredFromBatch);
        Assert.Equal(await Uninterrupted(130), sink.Batches);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_truncated_newest_snapshot_falls_back_to_the_previous_one_and_replays(bool deltas)
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 80));
        var sink = new CollectingSink<Total?>();
        await Runner(dir, source, sink, deltas: deltas).RunAsync();
        var snapshots = Directory.GetFiles(Path.Combine(dir.Sub("checkpoint"), "state")).OrderBy(f => f).ToList();
        Assert.Equal(2, snapshots.Count); // retention keeps 2: batches 5 and 7
        var newest = snapshots[^1];
        var bytes = File.ReadAllBytes(newest);
        File.WriteAllBytes(newest, bytes[..(bytes.Length / 2)]);

        source.Add(0, Events(80, 40));
        var summary = await Runner(dir, source, sink, deltas: deltas).RunAsync();
        Assert.Equal(5, summary.RestoredFromBatch);
        // Batches 6 and 7: from the deltas in their commit files, or (without deltas) re-run from their logged ranges.
        Assert.Equal(deltas ? 2 : 0, summary.BatchesFromDeltas);
        Assert.Equal(deltas ? 0 : 2, summary.BatchesReplayed);
        Assert.Equal(await Uninterrupted(120), sink.Batches);
    }

    [Fact]
    public async Task Without_deltas_commit_files_hold_no_state_and_a_restore_reruns_the_batches_after_the_snapshot()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 70));
        var withDeltas = new TempDir();
        await Runner(withDeltas, source, new CollectingSink<Total?>(), deltas: true).RunAsync();
        await Runner(dir, source, new CollectingSink<Total?>(), deltas: false).RunAsync();
        // Same batches, same commits: only the deltas make the difference in size.
        long Size(TempDir d) => Directory.GetFiles(Path.Combine(d.Sub("checkpoint"), "commits")).Sum(f => new FileInfo(f).Length);
        Assert.True(Size(dir) < Size(withDeltas), $"commit files: {Size(dir)} bytes without deltas, {Size(withDeltas)} with");
        withDeltas.Dispose();

        // Batch 6 committed after the snapshot of batch 5 (interval 3): it is re-run, and its output is not written again.
        foreach (var f in Directory.GetFiles(Path.Combine(dir.Sub("checkpoint"), "state")).Where(f => !f.EndsWith("5", StringComparison.Ordinal))) File.Delete(f);
        var sink = new CollectingSink<Total?>();
        source.Add(0, Events(70, 30));
        var summary = await Runner(dir, source, sink, deltas: false).RunAsync();
        Assert.Equal(5, summary.RestoredFromBatch);
        Assert.Equal(1, summary.BatchesReplayed);
        Assert.Equal(0, summary.BatchesFromDeltas);
        var expected = await Uninterrupted(100);
        Assert.Equal(expected.Where(b => b.Key >= 7).ToDictionary(b => b.Key, b => b.Value), sink.Batches);
    }

    [Fact]
    public async Task Deltas_hold_keys_updated_and_removed_within_one_batch()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        // Per batch of 10: x1 is updated then removed (a 0 removes state), x2 removed then re-created.
        for (int b = 0; b < 6; b++)
        {
            source.Add(0, new[] { new Event("x1", 1), new Event("x1", 0), new Event("x2", 0), new Event("x2", 3) });
            source.Add(0, Events(100 * b, 6));
        }

        var sink = new CollectingSink<Total?>();
        var runner = new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions
            {
                CheckpointDirectory = dir.Sub("checkpoint"), Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 10, CheckpointInterval = 100, WriteStateDeltas = true,
            })
            .BindSource(RunningTotals.Events(), source).BindSink(RunningTotals.Out(), sink);
        await runner.RunAsync();
        foreach (var f in Directory.GetFiles(Path.Combine(dir.Sub("checkpoint"), "state"))) File.Delete(f); // only deltas remain

        source.Add(0, new[] { new Event("x2", 1), new Event("x1", 1) });
        var summary = await runner.RunAsync();
        Assert.Null(summary.RestoredFromBatch);
        Assert.Equal(6, summary.BatchesFromDeltas);
        Assert.Equal(0, summary.BatchesReplayed);
        // x2 kept its re-created state (6 from batch 5), x1 starts again after its removal.
        Assert.Equal(new Total?[] { new Total("x2", 8, 2), new Total("x1", 2, 1) }, sink.Batches[6]);
    }

    [Fact]
    public async Task A_damaged_delta_is_not_trusted_and_its_batch_is_replayed()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 80));
        var sink = new CollectingSink<Total?>();
        await Runner(dir, source, sink).RunAsync();
        File.Delete(CheckpointFile(dir, "state", 7)); // the final snapshot: restore from 5
        File.WriteAllText(CheckpointFile(dir, "commits", 6), "garbage"); // offsets/7 still proves batch 6 committed

        source.Add(0, Events(80, 40));
        var summary = await Runner(dir, source, sink).RunAsync();
        Assert.Equal(5, summary.RestoredFromBatch);
        Assert.Equal(1, summary.BatchesReplayed);   // batch 6, whose delta is gone
        Assert.Equal(1, summary.BatchesFromDeltas); // batch 7
        Assert.Equal(await Uninterrupted(120), sink.Batches);
    }

    [Fact]
    public async Task A_flipped_byte_in_the_newest_snapshot_is_detected_by_its_checksum()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 80));
        var sink = new CollectingSink<Total?>();
        await Runner(dir, source, sink).RunAsync();
        var newest = Directory.GetFiles(Path.Combine(dir.Sub("checkpoint"), "state")).OrderBy(f => f).Last();
        var bytes = File.ReadAllBytes(newest);
        bytes[bytes.Length - 20] ^= 0x01; // inside the body: still decodes, but the checksum disagrees
        File.WriteAllBytes(newest, bytes);

        source.Add(0, Events(80, 40));
        var summary = await Runner(dir, source, sink).RunAsync();
        Assert.Equal(5, summary.RestoredFromBatch);
        Assert.Equal(await Uninterrupted(120), sink.Batches);
    }

    [Fact]
    public async Task A_corrupt_newest_commit_reruns_that_batch_with_the_same_output()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 70));
        var sink = new CollectingSink<Total?>();
        await Runner(dir, source, sink).RunAsync();
        File.Delete(CheckpointFile(dir, "state", 6)); // the final snapshot, so that batch 6 must be re-run
        File.WriteAllText(CheckpointFile(dir, "commits", 6), "garbage");
        int writesBefore = sink.Writes;

        var summary = await Runner(dir, source, sink).RunAsync();
        Assert.Equal(5, summary.RestoredFromBatch);
        Assert.Equal(6, summary.LastCommittedBatch);
        Assert.Equal(1, summary.BatchesRun); // batch 6, re-run from its logged offsets and committed
        Assert.Equal(writesBefore + 1, sink.Writes);
        Assert.Equal(await Uninterrupted(70), sink.Batches);
    }

    [Fact]
    public async Task A_lost_commit_is_proven_by_the_next_batchs_offsets_so_that_batch_is_not_rerun()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 100));
        var failing = new FailingSink(failAtBatch: 7);
        await Assert.ThrowsAsync<PipelineExecutionException>(() => Runner(dir, source, failing).RunAsync());
        // Commit files are not fsynced; a power loss could take commits/6 away. offsets/7 still proves it.
        File.Delete(CheckpointFile(dir, "commits", 6));

        var sink = new RecordingSink();
        foreach (var (batch, records) in failing.Inner.Batches) await sink.Inner.WriteBatchAsync(batch, records, default);
        var summary = await Runner(dir, source, sink).RunAsync();
        Assert.Equal(5, summary.RestoredFromBatch);
        Assert.Equal(1, summary.BatchesReplayed); // batch 6 replayed to rebuild state, its sink skipped
        Assert.Equal(new long[] { 7, 8, 9 }, sink.Written);
        Assert.Equal(await Uninterrupted(100), sink.Inner.Batches);
    }

    private sealed class RecordingSink : ISinkConnector<Total?>
    {
        public CollectingSink<Total?> Inner { get; } = new();

        public List<long> Written { get; } = new();

        public Task WriteBatchAsync(long batchId, IReadOnlyList<Total?> records, CancellationToken cancellationToken)
        {
            Written.Add(batchId);
            return Inner.WriteBatchAsync(batchId, records, cancellationToken);
        }
    }

    [Fact]
    public async Task A_corrupt_uncommitted_offsets_file_is_planned_again()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 100));
        var failing = new FailingSink(failAtBatch: 4);
        await Assert.ThrowsAsync<PipelineExecutionException>(() => Runner(dir, source, failing).RunAsync());
        File.WriteAllBytes(CheckpointFile(dir, "offsets", 4), new byte[] { 0x81, 0xa1 });

        var sink = new CollectingSink<Total?>();
        foreach (var (batch, records) in failing.Inner.Batches) await sink.WriteBatchAsync(batch, records, default);
        await Runner(dir, source, sink).RunAsync();
        Assert.Equal(await Uninterrupted(100), sink.Batches);
    }

    [Fact]
    public async Task Retention_keeps_the_newest_snapshots_and_the_logs_they_need()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 200));
        await Runner(dir, source, new CollectingSink<Total?>(), interval: 2).RunAsync();
        static long[] Batches(string folder) => Directory.GetFiles(folder).Select(f => long.Parse(Path.GetFileName(f))).OrderBy(b => b).ToArray();
        Assert.Equal(new long[] { 17, 19 }, Batches(Path.Combine(dir.Sub("checkpoint"), "state")));
        Assert.Equal(new long[] { 17, 18, 19 }, Batches(Path.Combine(dir.Sub("checkpoint"), "offsets")));
        Assert.Equal(new long[] { 17, 18, 19 }, Batches(Path.Combine(dir.Sub("checkpoint"), "commits")));
    }

    [Fact]
    public async Task Keys_a_batch_leaves_unchanged_stay_out_of_its_delta_and_a_restore_from_deltas_is_exact()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        var sink = new CollectingSink<Total?>();
        var users = Enumerable.Range(0, 50).Select(i => $"user-{i:D2}").ToList();
        async Task<RunSummary> Batch(Func<int, long> value)
        {
            source.Add(0, users.Select((u, i) => new Event(u, value(i))).ToList());
            // Restore from the state deltas alone: drop the snapshot each run writes when it ends.
            string state = Path.Combine(dir.Sub("checkpoint"), "state");
            if (Directory.Exists(state)) Directory.Delete(state, recursive: true);
            return await new PipelineRunner(RunningMax.Definition, new PipelineRunnerOptions { CheckpointDirectory = dir.Sub("checkpoint"), Trigger = TriggerMode.AvailableNow })
                .BindSource(RunningMax.Events(), source)
                .BindSink(RunningMax.Out(), sink)
                .RunAsync();
        }

        await Batch(_ => 10);                          // batch 0: 50 new keys
        await Batch(_ => 5);                           // batch 1: no key changes
        await Batch(i => i % 2 == 0 ? 20 : 7);        // batch 2: half the keys change
        long CommitSize(long batch) => new FileInfo(CheckpointFile(dir, "commits", batch)).Length;
        Assert.True(CommitSize(1) + 400 < CommitSize(0), $"batch 1 changed nothing but its commit has {CommitSize(1)} bytes (batch 0: {CommitSize(0)})");
        Assert.True(CommitSize(2) > CommitSize(1) + 200, $"batch 2 changed 25 keys but its commit has {CommitSize(2)} bytes (batch 1: {CommitSize(1)})");

        // Restored from the deltas of batches 0-2, the maxima are 20 (even users) and 10 (odd): 15 raises only the odd ones.
        var summary = await Batch(_ => 15);
        Assert.Equal(3, summary.BatchesFromDeltas);
        Assert.Equal(users.Where((_, i) => i % 2 == 1).Select(u => new Total(u, 15, 0)), sink.Batches[3]);
    }

    [Fact]
    public async Task A_second_runner_on_the_same_checkpoint_is_refused()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryCheckpointStore(dir.Sub("checkpoint"));
        using var held = store.AcquireLock("test holder");
        var source = new MemorySource<Event>();
        var e = await Assert.ThrowsAsync<CheckpointLockedException>(() => Runner(dir, source, new CollectingSink<Total?>()).RunAsync());
        Assert.Contains("is in use by test holder", e.Message);
        Assert.Contains("Only one process may run a pipeline on a checkpoint", e.Message);
    }

    [Fact]
    public async Task Another_pipelines_checkpoint_is_refused_with_what_to_do()
    {
        using var dir = new TempDir();
        var orders = new MemorySource<Order>();
        var customers = new MemorySource<Customer>();
        await new PipelineRunner(Enrich.Definition, Options(dir)).BindSource(Enrich.Orders(), orders).BindSource(Enrich.Customers(), customers)
            .BindSink(Enrich.Out(), new CollectingSink<Enriched>()).RunAsync();
        var e = await Assert.ThrowsAsync<CheckpointMismatchException>(() => Runner(dir, new MemorySource<Event>(), new CollectingSink<Total?>()).RunAsync());
        Assert.Contains("belongs to pipeline 'enrich', not 'running-totals'", e.Message);
    }

    [Fact]
    public async Task State_written_with_another_schema_is_refused_operator_by_operator()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 30));
        await Runner(dir, source, new CollectingSink<Total?>()).RunAsync();
        var newest = Directory.GetFiles(Path.Combine(dir.Sub("checkpoint"), "state")).OrderBy(f => f).Last();
        var envelope = PipelineDsl.Checkpointing.CheckpointFile.Open(File.ReadAllBytes(newest), "snapshot", "test");
        var body = envelope.Body.ToArray();
        // The snapshot carries the manifest it was written with: pretend field 0 was written as another type.
        Assert.Equal("{0:int64,1:int64}", RunningTotals.Definition.Manifest.Find("totals")!.StateSchema!.ValueSchema);
        var altered = ReplaceAscii(body, "{0:int64,1:int64}", "{0:float,1:int64}");
        File.WriteAllBytes(newest, PipelineDsl.Checkpointing.CheckpointFile.Wrap("snapshot", "running-totals", envelope.CheckpointId!, envelope.Batch!.Value, altered));

        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Runner(dir, source, new CollectingSink<Total?>()).RunAsync());
        Assert.Single(e.Operators);
        Assert.Equal("operator 'totals': its state schema changed incompatibly at version 1: field 0 was float and is now int64. Bump its Version and add a [StateMigration(\"totals\", FromVersion = 1)] method, or declare [DiscardState(\"totals\", FromVersion = 1)].", e.Operators[0]);
    }

    [Fact]
    public async Task Checkpoint_files_are_plain_messagepack_with_a_readable_envelope()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 30));
        await Runner(dir, source, new CollectingSink<Total?>()).RunAsync();
        var bytes = File.ReadAllBytes(CheckpointFile(dir, "offsets", 1));
        var reader = new PipelineDsl.Serialization.MessagePackReader(bytes);
        var keys = new List<string>();
        int count = reader.ReadMapHeader();
        for (int i = 0; i < count; i++)
        {
            keys.Add(reader.ReadString()!);
            reader.Skip();
        }

        Assert.True(reader.End);
        Assert.Equal(new[] { "format", "version", "kind", "pipeline", "checkpoint", "batch", "body", "crc32c" }, keys);
    }

    [Fact]
    public void The_checksum_is_crc32c_and_files_of_envelope_version_1_with_sha256_are_still_read()
    {
        // The standard check value of CRC-32C (RFC 3720, iSCSI): "123456789" -> E3069283.
        Assert.Equal(0xE3069283u, PipelineDsl.Checkpointing.CheckpointFile.Crc32C("123456789"u8));
        Assert.Equal(0u, PipelineDsl.Checkpointing.CheckpointFile.Crc32C(ReadOnlySpan<byte>.Empty));

        // A version 1 envelope as earlier builds wrote it: "checksum" = the first 8 bytes of SHA-256(body).
        var body = new PipelineDsl.Serialization.MessagePackWriter(64);
        body.WriteArrayHeader(2);
        body.Write("a body");
        body.Write(42L);
        byte[] bodyBytes = body.ToArray();
        byte[] V1(byte[] checksum)
        {
            var w = new PipelineDsl.Serialization.MessagePackWriter(256);
            w.WriteMapHeader(6);
            w.Write("format");
            w.Write("pipelinedsl-checkpoint");
            w.Write("version");
            w.Write(1L);
            w.Write("kind");
            w.Write("snapshot");
            w.Write("pipeline");
            w.Write("p");
            w.Write("body");
            w.WriteRaw(bodyBytes);
            w.Write("checksum");
            w.WriteBinary(checksum);
            return w.ToArray();
        }

        byte[] sha = System.Security.Cryptography.SHA256.HashData(bodyBytes)[..8];
        var unwrapped = PipelineDsl.Checkpointing.CheckpointFile.Open(V1(sha), "snapshot", "old");
        Assert.Equal("p", unwrapped.PipelineId);
        Assert.Null(unwrapped.CheckpointId);
        Assert.Equal(bodyBytes, unwrapped.Body.ToArray());
        sha[0] ^= 1;
        var e = Assert.Throws<PipelineDsl.Checkpointing.CheckpointCorruptException>(() => PipelineDsl.Checkpointing.CheckpointFile.Open(V1(sha), "snapshot", "old"));
        Assert.Contains("fails its checksum", e.Message);
    }

    [Fact]
    public async Task Options_and_bindings_are_validated_with_messages_that_name_them()
    {
        using var dir = new TempDir();
        var e1 = await Assert.ThrowsAsync<ArgumentException>(() =>
            new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions()).RunAsync());
        Assert.Contains("PipelineRunnerOptions.CheckpointDirectory is not set", e1.Message);
        var e2 = await Assert.ThrowsAsync<ArgumentException>(() =>
            new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions { CheckpointDirectory = dir.Path, MaxRecordsPerPartition = 0 }).RunAsync());
        Assert.Contains("PipelineRunnerOptions.MaxRecordsPerPartition is 0", e2.Message);
        var e3 = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions { CheckpointDirectory = dir.Path }).RunAsync());
        Assert.Contains("unbound source 'events', sink 'out'", e3.Message);
        Assert.Throws<ArgumentException>(() => new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions()).BindSource(Enrich.Orders(), new MemorySource<Order>()));
    }

    private static byte[] ReplaceAscii(byte[] bytes, string from, string to)
    {
        byte[] f = System.Text.Encoding.ASCII.GetBytes(from), t = System.Text.Encoding.ASCII.GetBytes(to);
        var result = (byte[])bytes.Clone();
        int replaced = 0;
        for (int i = 0; i + f.Length <= result.Length; i++)
        {
            if (result.AsSpan(i, f.Length).SequenceEqual(f))
            {
                t.CopyTo(result, i);
                replaced++;
            }
        }

        Assert.True(replaced > 0);
        return result;
    }

    /// <summary>Fails (like a crash before commit) when asked to write a given batch.</summary>
    private sealed class FailingSink(long failAtBatch) : ISinkConnector<Total?>
    {
        public CollectingSink<Total?> Inner { get; } = new();

        public Task WriteBatchAsync(long batchId, IReadOnlyList<Total?> records, CancellationToken cancellationToken) =>
            batchId == failAtBatch ? throw new IOException("disk full (simulated)") : Inner.WriteBatchAsync(batchId, records, cancellationToken);
    }
}
