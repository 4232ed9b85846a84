using PipelineDsl.Checkpointing;
using PipelineDsl.Serialization;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// Files that are intact but wrong: re-sealed with a valid checksum (what a buggy writer, a restored backup or
/// a file copied between checkpoints produces), foreign, stale, or not files at all. Each must be detected and
/// never trusted: recovery falls back as for damage, and the output is exactly that of an uninterrupted run, or
/// the run fails with a checkpoint exception naming the file.
/// </summary>
public class CheckpointTrustTests
{
    private static PipelineRunnerOptions Options(string checkpoint) => new()
    {
        CheckpointDirectory = checkpoint,
        Trigger = TriggerMode.AvailableNow,
        MaxRecordsPerPartition = 10,
        CheckpointInterval = 3,
        RetainedSnapshots = 2,
        Parallelism = 1,
    };

    private static List<Event> Events(int from, int count, int users = 7) =>
        Enumerable.Range(from, count).Select(i => new Event("u" + (i % users), i % 13 + 1)).ToList();

    private static PipelineRunner Runner(string checkpoint, MemorySource<Event> source, ISinkConnector<Total?> sink) =>
        new PipelineRunner(RunningTotals.Definition, Options(checkpoint))
            .BindSource(RunningTotals.Events(), source)
            .BindSink(RunningTotals.Out(), sink);

    private static async Task<IReadOnlyDictionary<long, List<Total?>>> Uninterrupted(int records)
    {
        using var dir = new TempDir();
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, records));
        var sink = new CollectingSink<Total?>();
        await Runner(dir.Sub("checkpoint"), source, sink).RunAsync();
        return sink.Batches;
    }

    /// <summary>A checkpoint after 50 records (batches 0-4; snapshots of batches 2 and 4; state deltas in every commit).</summary>
    private sealed class Fixture : IDisposable
    {
        private readonly TempDir _dir = new();

        public Fixture(int users = 7)
        {
            Source.Add(0, Events(0, 50, users));
            Runner(Checkpoint, Source, Sink).RunAsync().GetAwaiter().GetResult();
        }

        public string Checkpoint => _dir.Sub("checkpoint");

        public MemorySource<Event> Source { get; } = new();

        public CollectingSink<Total?> Sink { get; } = new();

        public string File(string folder, long batch) => Path.Combine(Checkpoint, folder, batch.ToString("D19"));

        /// <summary>Adds 50 more records and runs again.</summary>
        public Task<RunSummary> ContinueAsync()
        {
            Source.Add(0, Events(50, 50));
            return Runner(Checkpoint, Source, Sink).RunAsync();
        }

        public void Dispose() => _dir.Dispose();
    }

    private static CheckpointEnvelope Envelope(string path, string kind) => CheckpointFile.Open(System.IO.File.ReadAllBytes(path), kind, path);

    private static void Reseal(string path, string kind, Func<byte[], byte[]> edit, string? checkpointId = null, long? batch = null) =>
        CheckpointTestFiles.Reseal(path, kind, edit, checkpointId, batch);

    /// <summary>A map body without the entry <paramref name="key"/>.</summary>
    private static byte[] WithoutKey(byte[] body, string key)
    {
        var entries = CheckpointTestFiles.MapEntries(body);
        Assert.Equal(1, entries.RemoveAll(e => e.Key == key)); // the key was there
        return CheckpointTestFiles.Map(entries);
    }

    [Fact]
    public async Task A_flipped_bit_in_the_envelope_header_is_damage_not_another_pipeline()
    {
        using var f = new Fixture();
        string metadata = Path.Combine(f.Checkpoint, "metadata");
        byte[] bytes = System.IO.File.ReadAllBytes(metadata);
        int at = IndexOf(bytes, "running-totals"u8.ToArray());
        bytes[at + 9] ^= 0x02; // "running-totals" -> "running-votals": the header is under the checksum now
        System.IO.File.WriteAllBytes(metadata, bytes);

        var e = await Assert.ThrowsAsync<CheckpointMismatchException>(() => f.ContinueAsync());
        Assert.Contains("has a damaged metadata file", e.Message);
        Assert.Contains("fails its checksum", e.Message);
        Assert.DoesNotContain("votals", e.Message);
    }

    [Theory]
    [InlineData("operators")]
    [InlineData("positions")]
    public async Task A_resealed_snapshot_missing_a_required_part_is_not_trusted_and_recovery_falls_back(string part)
    {
        using var f = new Fixture();
        Reseal(f.File("state", 4), "snapshot", body => WithoutKey(body, part));
        var summary = await f.ContinueAsync();
        Assert.Equal(2, summary.RestoredFromBatch);
        Assert.Equal(2, summary.BatchesFromDeltas);
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
    }

    [Fact]
    public async Task An_older_snapshot_copied_over_a_newer_one_is_not_trusted_and_recovery_falls_back()
    {
        using var f = new Fixture();
        System.IO.File.Copy(f.File("state", 2), f.File("state", 4), overwrite: true); // intact, of this checkpoint, of batch 2
        var summary = await f.ContinueAsync();
        Assert.Equal(2, summary.RestoredFromBatch);
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
    }

    [Fact]
    public async Task An_older_snapshot_resealed_as_the_newer_batch_is_caught_by_its_body_and_its_positions()
    {
        using var f = new Fixture();
        byte[] older = Envelope(f.File("state", 2), "snapshot").Body.ToArray();
        // Every identity field says batch 4; the body still says 2 and holds batch 2's positions.
        Reseal(f.File("state", 4), "snapshot", _ => older);
        var summary = await f.ContinueAsync();
        Assert.Equal(2, summary.RestoredFromBatch);
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);

        // The same with the body's batch number forged too: its positions (batch 2's) disagree with offsets/4.
        // Either file may be the altered one, so neither is trusted, and batch 4 cannot be rebuilt: refused, by name.
        using var g = new Fixture();
        byte[] forged = ReplaceBatch(Envelope(g.File("state", 2), "snapshot").Body.ToArray(), 4);
        Reseal(g.File("state", 4), "snapshot", _ => forged);
        var e = await Assert.ThrowsAsync<CheckpointMismatchException>(() => g.ContinueAsync());
        Assert.Contains("'state/0000000000000000004' and 'offsets/0000000000000000004' disagree about where batch 4 ended", e.Message);
        Assert.Equal(5, g.Sink.Batches.Count); // nothing was delivered again
    }

    [Fact]
    public async Task A_snapshot_from_another_checkpoint_of_the_same_pipeline_is_not_trusted()
    {
        using var f = new Fixture();
        using var other = new Fixture(users: 3); // other users: restoring its state would give other totals
        System.IO.File.Copy(other.File("state", 4), f.File("state", 4), overwrite: true);
        var summary = await f.ContinueAsync();
        Assert.Equal(2, summary.RestoredFromBatch);
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);

        // Sealed again with this checkpoint's identity, the foreign state still fails: its positions are not this batch's.
        using var g = new Fixture();
        using var other2 = new Fixture(users: 3);
        other2.Source.Add(0, Events(50, 5, 3));
        await Runner(other2.Checkpoint, other2.Source, other2.Sink).RunAsync(); // batch 5 reads 5 records: positions differ
        string id = Envelope(g.File("state", 4), "snapshot").CheckpointId!;
        byte[] foreign = ReplaceBatch(Envelope(other2.File("state", 5), "snapshot").Body.ToArray(), 4);
        Reseal(g.File("state", 4), "snapshot", _ => foreign, checkpointId: id, batch: 4);
        var e = await Assert.ThrowsAsync<CheckpointMismatchException>(() => g.ContinueAsync());
        Assert.Contains("disagree about where batch 4 ended", e.Message);
    }

    [Fact]
    public async Task A_resealed_offsets_file_with_an_impossible_planning_time_is_not_trusted()
    {
        // Found by the fuzz test on the RocksDB backend: a flipped bit in the planning time of a pending batch's offsets
        // file, re-sealed, made the batch's progress record throw instead of the file being called damaged. Here a
        // pending batch 5 that continues the checkpoint exactly, but was planned in no year a clock can give.
        using var f = new Fixture();
        string id = Envelope(f.File("offsets", 4), "offsets").CheckpointId!;
        var w = new MessagePackWriter();
        w.WriteMapHeader(3);
        w.Write("batch");
        w.Write(5L);
        w.Write("plannedAt");
        w.Write(144116984258909913L);
        w.Write("sources");
        w.WriteMapHeader(1);
        w.Write("events");
        w.WriteMapHeader(1);
        w.Write("0");
        w.WriteArrayHeader(2);
        w.Write(50L);
        w.Write(60L);
        System.IO.File.WriteAllBytes(f.File("offsets", 5), CheckpointFile.Wrap("offsets", "running-totals", id, 5, w.WrittenSpan));

        await f.ContinueAsync();
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
    }

    [Fact]
    public async Task A_pending_offsets_file_that_does_not_continue_the_checkpoint_is_planned_again()
    {
        using var f = new Fixture();
        // A pending batch 5 planned from position 20 (the batch before it ended at 50), sealed with this
        // checkpoint's identity: replaying it would read records 20-29 a second time.
        string id = Envelope(f.File("offsets", 4), "offsets").CheckpointId!;
        var w = new MessagePackWriter();
        w.WriteMapHeader(3);
        w.Write("batch");
        w.Write(5L);
        w.Write("plannedAt");
        w.Write(0L);
        w.Write("sources");
        w.WriteMapHeader(1);
        w.Write("events");
        w.WriteMapHeader(1);
        w.Write("0");
        w.WriteArrayHeader(2);
        w.Write(20L);
        w.Write(30L);
        System.IO.File.WriteAllBytes(f.File("offsets", 5), CheckpointFile.Wrap("offsets", "running-totals", id, 5, w.WrittenSpan));

        await f.ContinueAsync();
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
    }

    [Fact]
    public async Task A_files_from_another_checkpoint_are_refused_even_when_intact()
    {
        using var f = new Fixture();
        using var other = new Fixture();
        // The other checkpoint's pending-to-be offsets of batch 5 and its commit of 4: intact, same pipeline, other identity.
        other.Source.Add(0, Events(50, 10));
        await Runner(other.Checkpoint, other.Source, other.Sink).RunAsync();
        System.IO.File.Copy(other.File("offsets", 5), f.File("offsets", 5));
        var e = Assert.Throws<CheckpointCorruptException>(() => OpenOffsets(f, 5));
        Assert.Contains("belongs to another checkpoint", e.Message);
        await f.ContinueAsync();
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
    }

    [Fact]
    public async Task A_resealed_state_delta_without_its_delta_entry_fails_naming_the_file()
    {
        using var f = new Fixture();
        System.IO.File.Delete(f.File("state", 4)); // restore must apply the deltas of batches 3 and 4
        Reseal(f.File("commits", 3), "commit", body => RewriteDelta(body));
        var e = await Assert.ThrowsAsync<CheckpointCorruptException>(() => f.ContinueAsync());
        Assert.Contains("commits/0000000000000000003", e.Message);
        Assert.Contains("has no 'delta' entry", e.Message);
    }

    [Fact]
    public async Task A_snapshot_file_of_2_GiB_or_more_is_damage_named_and_recovery_falls_back()
    {
        using var f = new Fixture();
        using (var huge = new FileStream(f.File("state", 4), FileMode.Create)) huge.SetLength(2L * 1024 * 1024 * 1024 + 10); // sparse: no disk used
        var summary = await f.ContinueAsync();
        Assert.Equal(2, summary.RestoredFromBatch);
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
        var store = new LocalDirectoryCheckpointStore(f.Checkpoint);
        using (var huge = new FileStream(f.File("state", 4), FileMode.Create)) huge.SetLength(3L * 1024 * 1024 * 1024);
        var e = await Assert.ThrowsAsync<CheckpointCorruptException>(() => store.ReadAsync("state/0000000000000000004", default));
        Assert.Contains("state/0000000000000000004", e.Message);
        Assert.Contains("larger than any checkpoint file can be", e.Message);
    }

    [Fact]
    public async Task A_fifo_in_place_of_a_snapshot_never_blocks_recovery()
    {
        using var f = new Fixture();
        System.IO.File.Delete(f.File("state", 4));
        CheckpointTestFiles.MakeFifo(f.File("state", 4));
        var run = f.ContinueAsync();
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60))));
        Assert.Equal(2, (await run).RestoredFromBatch);
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
    }

    [Fact]
    public async Task A_checkpoint_of_an_older_build_gets_an_identity_and_older_envelopes_are_accepted_only_up_to_then()
    {
        using var f = new Fixture();
        // Make it a checkpoint as builds before identities wrote it: envelope version 2 everywhere.
        foreach (var file in Directory.EnumerateFiles(f.Checkpoint, "*", SearchOption.AllDirectories))
        {
            string name = Path.GetFileName(file);
            if (name is "lock" or "lock.owner" || name.StartsWith('.')) continue;
            string folder = Path.GetFileName(Path.GetDirectoryName(file)!);
            if (folder == "shared") continue; // a state backend's files have no envelope
            string kind = folder switch { "offsets" => "offsets", "commits" => "commit", "state" => "snapshot", _ => "metadata" };
            var envelope = Envelope(file, kind);
            System.IO.File.WriteAllBytes(file, Version2(kind, envelope.PipelineId, envelope.Body.Span));
        }

        var summary = await f.ContinueAsync();
        Assert.True(summary.Restored);
        Assert.Equal(await Uninterrupted(100), f.Sink.Batches);
        var metadata = Envelope(Path.Combine(f.Checkpoint, "metadata"), "metadata");
        Assert.Equal(3, metadata.Version);
        Assert.NotNull(metadata.CheckpointId);
        Assert.Equal(3, Envelope(f.File("offsets", 9), "offsets").Version);

        // An older envelope for a batch after the adoption is stale or foreign: not used.
        var newest = Envelope(f.File("state", 9), "snapshot");
        System.IO.File.WriteAllBytes(f.File("state", 9), Version2("snapshot", "running-totals", newest.Body.Span));
        f.Source.Add(0, Events(100, 10));
        summary = await Runner(f.Checkpoint, f.Source, f.Sink).RunAsync();
        Assert.NotEqual(9, summary.RestoredFromBatch);
        Assert.Equal(await Uninterrupted(110), f.Sink.Batches);
    }

    [Fact]
    public async Task A_full_disk_at_start_is_reported_as_such_and_the_lock_is_released_for_a_retry()
    {
        Assert.True(OperatingSystem.IsLinux(), "/dev/full is Linux's always-full device");
        using var dir = new TempDir();
        string checkpoint = dir.Sub("checkpoint");
        Directory.CreateDirectory(checkpoint);
        System.IO.File.CreateSymbolicLink(Path.Combine(checkpoint, "lock.owner"), "/dev/full"); // the first write at start fails with ENOSPC
        var source = new MemorySource<Event>();
        source.Add(0, Events(0, 20));
        var sink = new CollectingSink<Total?>();

        var e = await Assert.ThrowsAsync<IOException>(() => Runner(checkpoint, source, sink).RunAsync());
        Assert.Contains("no space left on the device", e.Message);
        Assert.DoesNotContain("in use", e.Message);

        System.IO.File.Delete(Path.Combine(checkpoint, "lock.owner"));
        await Runner(checkpoint, source, sink).RunAsync(); // the same process: the failed attempt released its lock
        Assert.Equal(20, sink.All.Count(t => t is not null) + sink.All.Count(t => t is null));
    }

    [Theory]
    [InlineData(30, "read-only file system")]
    [InlineData(28, "no space left")]
    [InlineData(122, "disk quota")]
    public void Ordinary_io_failures_are_named_as_what_they_are(int errno, string expected)
    {
        var e = new IOException("raw", errno);
        Assert.Contains(expected, LocalDirectoryCheckpointStore.DescribeIoFailure(e, "/x/lock"));
        Assert.Contains("permission denied", LocalDirectoryCheckpointStore.DescribeIoFailure(new UnauthorizedAccessException(), "/x/lock"));
    }

    private static void OpenOffsets(Fixture f, long batch)
    {
        var log = new CheckpointLog(new LocalDirectoryCheckpointStore(f.Checkpoint), "running-totals");
        log.ReadMetadataAsync(default).GetAwaiter().GetResult();
        log.ReadOffsetsAsync(CheckpointLog.Name("offsets", batch), default).GetAwaiter().GetResult();
    }

    /// <summary>The version 2 envelope earlier builds wrote: no identity, the CRC-32C over the body only.</summary>
    private static byte[] Version2(string kind, string pipeline, ReadOnlySpan<byte> body)
    {
        var w = new MessagePackWriter(body.Length + 128);
        w.WriteMapHeader(6);
        w.Write("format");
        w.Write("pipelinedsl-checkpoint");
        w.Write("version");
        w.Write(2L);
        w.Write("kind");
        w.Write(kind);
        w.Write("pipeline");
        w.Write(pipeline);
        w.Write("body");
        w.WriteRaw(body);
        w.Write("crc32c");
        var crc = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crc, CheckpointFile.Crc32C(body));
        w.WriteBinary(crc);
        return w.ToArray();
    }

    /// <summary>A snapshot body whose "batch" entry says <paramref name="batch"/>.</summary>
    private static byte[] ReplaceBatch(byte[] body, long batch)
    {
        var reader = new MessagePackReader(body);
        int count = reader.ReadMapHeader();
        var writer = new MessagePackWriter(body.Length + 8);
        writer.WriteMapHeader(count);
        for (int i = 0; i < count; i++)
        {
            string k = reader.ReadString()!;
            writer.Write(k);
            if (k == "batch")
            {
                reader.Skip();
                writer.Write(batch);
            }
            else
            {
                writer.WriteRaw(reader.ReadRaw());
            }
        }

        return writer.ToArray();
    }

    /// <summary>A commit body whose state delta lost the "delta" entry of its one operator.</summary>
    private static byte[] RewriteDelta(byte[] body)
    {
        var reader = new MessagePackReader(body);
        int count = reader.ReadMapHeader();
        var writer = new MessagePackWriter(body.Length);
        writer.WriteMapHeader(count);
        bool found = false;
        for (int i = 0; i < count; i++)
        {
            string k = reader.ReadString()!;
            writer.Write(k);
            if (k != "state")
            {
                writer.WriteRaw(reader.ReadRaw());
                continue;
            }

            int ops = reader.ReadMapHeader();
            writer.WriteMapHeader(ops);
            for (int o = 0; o < ops; o++)
            {
                writer.Write(reader.ReadString()!);
                int fields = reader.ReadMapHeader();
                var kept = new List<(string, byte[])>();
                for (int j = 0; j < fields; j++)
                {
                    string field = reader.ReadString()!;
                    byte[] value = reader.ReadRaw().ToArray();
                    if (field == "delta") found = true;
                    else kept.Add((field, value));
                }

                writer.WriteMapHeader(kept.Count);
                foreach (var (field, value) in kept)
                {
                    writer.Write(field);
                    writer.WriteRaw(value);
                }
            }
        }

        Assert.True(found, "the commit held no delta entry to remove");
        return writer.ToArray();
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        }

        throw new InvalidOperationException("not found");
    }
}
