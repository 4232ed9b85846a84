using PipelineDsl.Checkpointing;
using PipelineDsl.Serialization;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;
using PipelineDsl.State;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// Every operator's state is stored with the number of its layout ("format"): a checkpoint whose layout is newer
/// than the build's is refused before anything is decoded, naming the operator and the file, instead of being
/// misread. Files written before the numbers were recorded are read by their shape (see the golden tests).
/// </summary>
public class StateFormatTests
{
    private static PipelineRunner Runner(string checkpoint, MemorySource<Event> source, ISinkConnector<Total?> sink, int interval) =>
        new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions
            {
                CheckpointDirectory = checkpoint,
                Trigger = TriggerMode.AvailableNow,
                MaxRecordsPerPartition = 10,
                CheckpointInterval = interval,
                Parallelism = 1,
            })
            .BindSource(RunningTotals.Events(), source)
            .BindSink(RunningTotals.Out(), sink);

    private static MemorySource<Event> Source(int records)
    {
        var source = new MemorySource<Event>();
        source.Add(0, Enumerable.Range(0, records).Select(i => new Event("u" + (i % 4), i)).ToList());
        return source;
    }

    private static string Name(string checkpoint, string folder, long batch) => Path.Combine(checkpoint, folder, batch.ToString("D19"));

    [Fact]
    public async Task Snapshots_and_deltas_record_each_operators_format()
    {
        using var dir = new TempDir();
        string checkpoint = dir.Sub("checkpoint");
        await Runner(checkpoint, Source(30), new CollectingSink<Total?>(), interval: 2).RunAsync();

        var snapshot = SnapshotCodec.Read(CheckpointFile.Open(File.ReadAllBytes(Name(checkpoint, "state", 1)), "snapshot", "state/1").Body, "state/1");
        // The in-memory store's entries (format 1), or the RocksDB backend's file list (100) when the suite runs on it.
        Assert.Equal(StateBackendSelection.Name == "rocksdb" ? SharedStateFileSet.Format : 1, Assert.Single(snapshot.Operators!).Value.Format);

        var commit = new CheckpointLog(new LocalDirectoryCheckpointStore(checkpoint), RunningTotals.Definition.PipelineId);
        await commit.ReadMetadataAsync(CancellationToken.None);
        var delta = await commit.ReadCommitDeltaAsync(CheckpointLog.Name("commits", 2), CancellationToken.None);
        Assert.Equal(1, Assert.Single(DeltaCodec.Read(delta!)).Format);
    }

    [Fact]
    public async Task A_snapshot_in_a_newer_format_is_refused_naming_the_operator_and_file()
    {
        using var dir = new TempDir();
        string checkpoint = dir.Sub("checkpoint");
        await Runner(checkpoint, Source(20), new CollectingSink<Total?>(), interval: 2).RunAsync(); // snapshot after batch 1

        string path = Name(checkpoint, "state", 1);
        CheckpointTestFiles.Reseal(path, "snapshot", body =>
        {
            var read = SnapshotCodec.Read(body, path);
            var w = new MessagePackWriter(body.Length + 16);
            var parts = read.Operators!.Select(o => new SnapshotCodec.OperatorPart(o.Key, o.Value.Version, o.Value.Fingerprint, 99, x => x.WriteRaw(o.Value.Entries.Span))).ToList();
            SnapshotCodec.Write(w, read.Batch!.Value, read.ManifestJson!, read.Positions!.ToDictionary(p => p.Key, p => new SortedDictionary<string, long>(p.Value, StringComparer.Ordinal)), parts);
            return w.ToArray();
        });
        var before = File.ReadAllBytes(path);

        var source = Source(20);
        source.Add(0, new[] { new Event("u9", 1) });
        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Runner(checkpoint, source, new CollectingSink<Total?>(), interval: 2).RunAsync());
        var problem = Assert.Single(e.Operators);
        Assert.Contains("format 99", problem);
        Assert.Contains("newer build", problem);
        Assert.Contains(RunningTotals.Definition.Manifest.Operators.Single(o => o.StateSchema is not null).Id, problem);
        Assert.Equal(before, File.ReadAllBytes(path)); // nothing was changed
    }

    [Fact]
    public async Task A_delta_in_a_newer_format_is_refused_not_replayed_around()
    {
        using var dir = new TempDir();
        string checkpoint = dir.Sub("checkpoint");
        await Runner(checkpoint, Source(30), new CollectingSink<Total?>(), interval: 100).RunAsync(); // no snapshot but the final one
        foreach (var snapshot in Directory.GetFiles(Path.Combine(checkpoint, "state"))) File.Delete(snapshot);

        string path = Name(checkpoint, "commits", 1);
        CheckpointTestFiles.Reseal(path, "commit", body => CheckpointTestFiles.Map(CheckpointTestFiles.MapEntries(body).Select(entry =>
        {
            if (entry.Key != "state") return entry;
            var w = new MessagePackWriter(entry.Value.Length + 16);
            DeltaCodec.Write(w, DeltaCodec.Read(entry.Value).Select(p => new DeltaCodec.OperatorPart(p.OperatorId, p.Version, p.KeySchema!, p.ValueSchema!, 99, x => x.WriteRaw(p.Delta!.Value.Span))).ToList());
            return (entry.Key, w.ToArray());
        }).ToList()));

        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Runner(checkpoint, Source(30), new CollectingSink<Total?>(), interval: 100).RunAsync());
        Assert.Contains("format 99", Assert.Single(e.Operators));
        Assert.Contains("commits/" + 1L.ToString("D19"), e.Operators[0]);
    }
}
