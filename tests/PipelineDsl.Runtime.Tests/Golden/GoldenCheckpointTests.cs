namespace PipelineDsl.Runtime.Tests.Golden;

/// <summary>
/// A checkpoint written by any released build restores in this one, forever: every golden checkpoint (one
/// folder per checkpoint format under Golden/, written once by tools/GoldenWriter on the build that introduced
/// the format) is restored, the remaining batches run, and their output must equal the output the writing
/// build produced in an uninterrupted run.
/// </summary>
[Collection(EnrichAuditLog.Collection)]
public sealed class GoldenCheckpointTests
{
    private static readonly string Root = Path.Combine(AppContext.BaseDirectory, "Golden");

    /// <summary>Every (format folder, scenario, restore path).</summary>
    public static IEnumerable<object[]> Cases =>
        from version in Directory.GetDirectories(Root).Select(Path.GetFileName).Order(StringComparer.Ordinal)
        from scenario in GoldenScenario.All
        where Directory.Exists(Path.Combine(Root, version!, scenario.Name))
        from path in new[] { "snapshot", "snapshot+deltas" }
        where path == "snapshot" || Directory.Exists(Path.Combine(Root, version!, scenario.Name, "checkpoint", "state")) // a stateless pipeline has no snapshots
        select new object[] { version!, scenario.Name, path };

    [Fact]
    public void Golden_checkpoints_of_every_released_format_are_present()
    {
        // Formats are never deleted: a missing folder would silently drop a format from the test.
        var versions = Directory.GetDirectories(Root).Select(Path.GetFileName).ToList();
        Assert.Contains("v2", versions);
        Assert.Contains("v3", versions);
        Assert.Contains("v3-state-formats", versions);
        Assert.Contains("v3-rocksdb", versions);
        Assert.Contains("v3-join-buffers-rocksdb", versions);
        Assert.Contains("v3-sessions-rocksdb", versions);
        Assert.Contains("v3-windows-rocksdb", versions);
        foreach (var version in Directory.GetDirectories(Root))
        foreach (var scenario in GoldenScenario.All)
            Assert.True(File.Exists(Path.Combine(version, scenario.Name, "expected.txt")), $"{version}/{scenario.Name} is incomplete");
    }

    [Fact]
    public void The_state_formats_folder_records_a_format_number_for_every_operators_state()
    {
        // The folder is only worth keeping if it holds the newer layout: every snapshot part carries "format".
        int parts = 0;
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Root, "v3-state-formats"), "*", SearchOption.AllDirectories)
                     .Where(f => f.Contains($"{Path.DirectorySeparatorChar}state{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            var body = Checkpointing.SnapshotCodec.Read(Checkpointing.CheckpointFile.Open(File.ReadAllBytes(file), "snapshot", file).Body, file);
            foreach (var (id, op) in body.Operators!)
            {
                Assert.True(op.Format is >= 1, $"{file}: operator '{id}' has no format number");
                parts++;
            }
        }

        Assert.True(parts >= 5, $"only {parts} operator parts were found");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_golden_checkpoint_restores_and_the_remaining_batches_equal_the_writing_builds_output(string version, string scenarioName, string restorePath)
    {
        string golden = Path.Combine(Root, version, scenarioName);
        using var dir = new TempDir();
        string checkpoint = dir.Sub("checkpoint");
        CheckpointTestFiles.CopyDirectory(Path.Combine(golden, "checkpoint"), checkpoint);
        // A folder written on RocksDB holds state format 100 and shared files: it restores on RocksDB (from the shared
        // files, as no local copy exists), whichever backend this run of the suite uses by default.
        var scenario = GoldenScenario.All.Single(s => s.Name == scenarioName)
            .Fresh(IsRocksDb(version) ? new RocksDbStateBackend(dir.Sub("rocksdb")) : null);
        if (restorePath == "snapshot+deltas")
        {
            // Keep only the oldest snapshot: the batches after it are restored from their commit files' state deltas.
            var snapshots = Directory.GetFiles(Path.Combine(checkpoint, "state")).Order(StringComparer.Ordinal).ToList();
            Assert.True(snapshots.Count >= 2, "the golden checkpoint has a single snapshot, so no delta would be applied");
            foreach (var newer in snapshots.Skip(1)) File.Delete(newer);
        }

        var input = File.ReadAllLines(Path.Combine(golden, "input.txt")).Select(line =>
        {
            var f = line.Split('\t');
            return (int.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture), f[1], int.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture), f[3]);
        }).ToList();
        var expected = File.ReadAllLines(Path.Combine(golden, "expected.txt"))
            .Where(l => int.Parse(l[..l.IndexOf('\t')], System.Globalization.CultureInfo.InvariantCulture) >= scenario.StoredBatches).ToList();
        Assert.NotEmpty(expected);

        for (int b = 0; b < scenario.StoredBatches; b++) await scenario.RunBatchAsync(checkpoint, b, input, run: false);
        var actual = new List<string>();
        for (int b = scenario.StoredBatches; b < scenario.Batches; b++) actual.AddRange(await scenario.RunBatchAsync(checkpoint, b, input));

        Assert.Equal(expected, actual);
    }

    private static bool IsRocksDb(string version) => version.EndsWith("-rocksdb", StringComparison.Ordinal);

    /// <summary>Files under checkpoint/shared/ are RocksDB's own files (SST, MANIFEST, OPTIONS), listed with sizes and CRCs by snapshots.</summary>
    private static bool IsSharedStateFile(string file) =>
        file.Contains($"{Path.DirectorySeparatorChar}checkpoint{Path.DirectorySeparatorChar}{State.SharedStateFiles.Folder}{Path.DirectorySeparatorChar}", StringComparison.Ordinal);

    [Theory]
    [InlineData("v3-rocksdb", "running-totals", 3)] // three snapshots of its keyed state
    [InlineData("v3-join-buffers-rocksdb", "interval-join", 1)] // the stream join's buffer, in RocksDB since session 16
    [InlineData("v3-sessions-rocksdb", "event-time", 1)] // the session window's sessions, in RocksDB since session 16
    [InlineData("v3-windows-rocksdb", "event-time", 9)] // three snapshots of the tumbling and hopping windows' panes (since session 17) and the sessions
    public void A_RocksDB_folder_holds_state_format_100_and_the_shared_files_its_snapshots_list(string version, string scenarioWithParts, int minimumParts)
    {
        // Worth keeping only if it holds what the RocksDB backend writes: parts in format 100 whose listed files are all
        // present under shared/ with the recorded sizes.
        int parts = 0;
        foreach (var scenario in Directory.GetDirectories(Path.Combine(Root, version)).Where(s => Directory.Exists(Path.Combine(s, "checkpoint", "state"))))
        foreach (var file in Directory.EnumerateFiles(Path.Combine(scenario, "checkpoint", "state")))
        {
            var body = Checkpointing.SnapshotCodec.Read(Checkpointing.CheckpointFile.Open(File.ReadAllBytes(file), "snapshot", file).Body, file);
            foreach (var (id, op) in body.Operators!.Where(o => o.Value.Format == 100))
            {
                var set = State.SharedStateFileSet.Read(op.Entries.Span, file);
                Assert.NotEmpty(set.Files);
                foreach (var shared in set.Files)
                {
                    var path = Path.Combine(scenario, "checkpoint", shared.SharedName.Replace('/', Path.DirectorySeparatorChar));
                    Assert.True(File.Exists(path), $"{file}: operator '{id}' lists {shared.SharedName}, which is missing");
                    Assert.Equal(shared.Size, new FileInfo(path).Length);
                }

                if (Path.GetFileName(scenario) == scenarioWithParts) parts++;
            }
        }

        Assert.True(parts >= minimumParts, $"only {parts} RocksDB parts were found in {version}/{scenarioWithParts}");
    }

    [Fact]
    public void Every_golden_checkpoint_file_is_plain_messagepack_that_an_independent_decoder_reads()
    {
        // The README promises any msgpack tool reads checkpoint files: the MessagePack package (a test-only
        // dependency, not PipelineDsl's own codec) decodes every file whole, envelope and body.
        int files = 0;
        foreach (var file in Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories).Where(f => f.Contains($"{Path.DirectorySeparatorChar}checkpoint{Path.DirectorySeparatorChar}", StringComparison.Ordinal) && !IsSharedStateFile(f)))
        {
            byte[] bytes = File.ReadAllBytes(file);
            var reader = new MessagePack.MessagePackReader(bytes);
            var envelope = MessagePack.MessagePackSerializer.Deserialize<Dictionary<object, object>>(ref reader, MessagePack.MessagePackSerializerOptions.Standard);
            Assert.True(reader.End, $"{file}: bytes after the envelope");
            Assert.Equal("pipelinedsl-checkpoint", envelope["format"]);
            Assert.Contains("body", envelope.Keys);
            Assert.StartsWith("{", MessagePack.MessagePackSerializer.ConvertToJson(bytes), StringComparison.Ordinal);
            files++;
        }

        Assert.True(files >= 5 * 10, $"only {files} golden checkpoint files were found");
    }
}
