using PipelineDsl.Checkpointing;
using PipelineDsl.Serialization;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The restore-time side of the state property rules (OperatorCompatibility): a checkpoint written while an
/// operator had another window size, gap or key member is refused by name, before any state is touched; a
/// safe property (the watermark's delay) restores. The checkpoint is made "older" by sealing its stored
/// manifests again with the old property value, exactly as the older build would have written them.
/// </summary>
public class StatePropertyRestoreTests
{
    private static async Task<string> WriteCheckpointAsync(TempDir dir)
    {
        string checkpoint = dir.Sub("checkpoint");
        var source = new MemorySource<Reading>();
        source.Add(0, new[] { new Reading("a", 100, 1), new Reading("a", 700, 2), new Reading("b", 1200, 4), new Reading("b", 2600, 8) });
        await Runner(checkpoint, source).RunAsync();
        return checkpoint;
    }

    private static PipelineRunner Runner(string checkpoint, MemorySource<Reading> source) =>
        new PipelineRunner(EventTimePipeline.Definition, new PipelineRunnerOptions { CheckpointDirectory = checkpoint, Trigger = TriggerMode.AvailableNow })
            .BindSource(EventTimePipeline.Readings(), source)
            .BindSink(EventTimePipeline.TumblingOut(), new CollectingSink<EventWindow<string, Reading>>())
            .BindSink(EventTimePipeline.HoppingOut(), new CollectingSink<EventWindow<string, Reading>>())
            .BindSink(EventTimePipeline.SessionsOut(), new CollectingSink<EventWindow<string, Reading>>());

    /// <summary>Rewrites one property of one operator in every manifest the checkpoint stores (metadata and snapshots).</summary>
    private static void StoreOldProperty(string checkpoint, string operatorId, string property, string current, string old)
    {
        string before = $"\"{property}\": {current}", after = $"\"{property}\": {old}";
        foreach (var file in Directory.GetFiles(checkpoint, "*", SearchOption.AllDirectories))
        {
            string name = Path.GetFileName(file);
            string folder = Path.GetFileName(Path.GetDirectoryName(file)!);
            string? kind = name == "metadata" ? "metadata" : folder == "state" ? "snapshot" : null;
            if (kind is null) continue;
            CheckpointTestFiles.Reseal(file, kind, body =>
            {
                var entries = CheckpointTestFiles.MapEntries(body);
                int m = entries.FindIndex(e => e.Key == "manifest");
                string manifest = new MessagePackReader(entries[m].Value).ReadString()!;
                int at = manifest.IndexOf($"\"id\": \"{operatorId}\"", StringComparison.Ordinal);
                int end = manifest.IndexOf("\n    }", at, StringComparison.Ordinal);
                string entry = manifest[at..end];
                Assert.Contains(before, entry);
                var w = new MessagePackWriter(manifest.Length + 16);
                w.Write(manifest[..at] + entry.Replace(before, after) + manifest[end..]);
                entries[m] = ("manifest", w.ToArray());
                return CheckpointTestFiles.Map(entries);
            });
        }
    }

    [Theory]
    [InlineData("tumbling", "sizeMs", "1000", "2000", "its sizeMs changed from 2000 to 1000")]
    [InlineData("hopping", "slideMs", "500", "250", "its slideMs changed from 250 to 500")]
    [InlineData("sessions", "gapMs", "500", "800", "its gapMs changed from 800 to 500")]
    [InlineData("tumbling", "keyMember", "\"Sensor\"", "\"Site\"", "it is keyed by Sensor instead of Site (keyMember)")]
    public async Task A_checkpoint_written_under_another_guarded_property_is_refused_by_name(string operatorId, string property, string current, string old, string reason)
    {
        using var dir = new TempDir();
        string checkpoint = await WriteCheckpointAsync(dir);
        StoreOldProperty(checkpoint, operatorId, property, current, old);
        var source = new MemorySource<Reading>();
        source.Add(0, new[] { new Reading("a", 100, 1) });
        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Runner(checkpoint, source).RunAsync());
        var problem = Assert.Single(e.Operators);
        Assert.StartsWith($"operator '{operatorId}': {reason}", problem);
        Assert.Contains($"[DiscardState(\"{operatorId}\", FromVersion = 1)]", problem);
    }

    [Fact]
    public async Task A_checkpoint_written_under_another_idle_timeout_restores_the_timeout_is_safe_to_change()
    {
        using var dir = new TempDir();
        string checkpoint = dir.Sub("checkpoint");
        var source = new MemorySource<Event>();
        source.Add(0, new[] { new Event("a", 1), new Event("b", 2) });
        var sink = new CollectingSink<Total?>();
        PipelineRunner Totals() => new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions { CheckpointDirectory = checkpoint, Trigger = TriggerMode.AvailableNow })
            .BindSource(RunningTotals.Events(), source).BindSink(RunningTotals.Out(), sink);
        await Totals().RunAsync();
        StoreOldProperty(checkpoint, "totals", "idleTimeoutBatches", "3", "7");
        source.Add(0, new[] { new Event("a", 5) });
        var summary = await Totals().RunAsync();
        Assert.True(summary.Restored);
        Assert.Equal(new Total("a", 12, 2), sink.All.Last()); // the restored state went on: (1 + 5) doubled, 2 records
    }

    [Fact]
    public async Task A_checkpoint_written_under_another_watermark_delay_restores_the_delay_is_safe_to_change()
    {
        using var dir = new TempDir();
        string checkpoint = await WriteCheckpointAsync(dir);
        StoreOldProperty(checkpoint, "timed", "maxOutOfOrdernessMs", "1000", "3000");
        var source = new MemorySource<Reading>();
        source.Add(0, new[] { new Reading("a", 100, 1), new Reading("a", 700, 2), new Reading("b", 1200, 4), new Reading("b", 2600, 8), new Reading("b", 5000, 1) });
        var summary = await Runner(checkpoint, source).RunAsync();
        Assert.True(summary.Restored);
        Assert.Equal(1, summary.InputRecords);
    }
}
