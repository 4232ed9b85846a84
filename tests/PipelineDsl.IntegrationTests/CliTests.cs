using System.Reflection;
using System.Text.RegularExpressions;
using PipelineDsl.Cli;

namespace PipelineDsl.IntegrationTests;

/// <summary>The pipelinedsl tool on a checkpoint written by the real sample job.</summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class CliTests : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);
    private static readonly string SampleAssembly = typeof(CliTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "SampleAssembly").Value!;
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static async Task<(int Code, string Out, string Err)> Cli(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await CliApp.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private string Checkpoint => _dir.Sub("checkpoint");

    private string RunJob(string? checkpoint = null, params string[] more)
    {
        string input = _dir.Sub("input");
        if (!Directory.Exists(input)) SampleProcess.RunToCompletion(new[] { "generate", "--records", "3000", "--files", "2", "--users", "40", "--output", input }, Long);
        SampleProcess.RunToCompletion(new[] { "--input", input, "--checkpoint", checkpoint ?? Checkpoint, "--output", _dir.Sub("output-" + Path.GetFileName(checkpoint ?? Checkpoint)), "--bounded", "--max-records-per-partition", "500", "--checkpoint-interval", "2" }.Concat(more), Long);
        return input;
    }

    [Fact]
    public async Task Inspect_and_dump_state_read_a_RocksDB_backed_checkpoint_as_they_read_the_in_memory_one()
    {
        RunJob();
        string rocks = _dir.Sub("rocks-checkpoint");
        RunJob(rocks, "--rocksdb", _dir.Sub("rocksdb"));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(rocks, "shared")));

        var (code, inMemory, _) = await Cli("dump-state", Checkpoint, "per-user");
        Assert.Equal(0, code);
        var (rocksCode, fromRocks, rocksError) = await Cli("dump-state", rocks, "per-user");
        Assert.True(rocksCode == 0, rocksError);
        // The same keys, values and last batches; in key order from RocksDB, in the hash table's order from memory.
        var expected = inMemory.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(40, expected.Count);
        Assert.Equal(expected, fromRocks.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));

        var (inspectCode, inspected, _) = await Cli("inspect", rocks);
        Assert.Equal(0, inspectCode);
        Assert.Matches(@"per-user\s.*\b40\b", inspected);
    }

    [Fact]
    public async Task Inspect_shows_batches_positions_state_and_the_stored_manifest()
    {
        string input = RunJob();
        var (code, output, _) = await Cli("inspect", Checkpoint);
        Assert.Equal(0, code);
        Assert.Contains("pipeline    clicks-per-user", output);
        Assert.Contains("last committed 2", output); // 1,500 lines per file at 500 per batch
        long size = new FileInfo(Path.Combine(input, "clicks-000.csv")).Length;
        Assert.Matches(new Regex($@"clicks\s+clicks-000\.csv\s+{size}\b"), output);
        int humans = Directory.GetFiles(input).SelectMany(File.ReadLines).Where(l => l.EndsWith(",0", StringComparison.Ordinal)).Select(l => l.Split(',')[0]).Distinct().Count();
        Assert.Matches(new Regex($@"per-user\s+1\s+{humans}\s"), output);
        Assert.Matches(new Regex(@"per-user\s+update-state\s+1\s+parse\s+string -> \{0:int64,1:int64\}"), output);
    }

    [Fact]
    public async Task Dump_state_decodes_the_state_with_its_field_names()
    {
        string input = RunJob();
        var (code, output, _) = await Cli("dump-state", Checkpoint, "per-user");
        Assert.Equal(0, code);
        var clicks = Directory.GetFiles(input).SelectMany(File.ReadLines).Where(l => l.EndsWith(",0", StringComparison.Ordinal)).GroupBy(l => l.Split(',')[0]).ToDictionary(g => g.Key, g => g.Count());
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(clicks.Count, lines.Length);
        var first = System.Text.Json.JsonDocument.Parse(lines[0]).RootElement;
        string user = first.GetProperty("key").GetString()!;
        Assert.Equal(clicks[user], first.GetProperty("value").GetProperty("Clicks").GetInt64());
        Assert.True(first.GetProperty("value").GetProperty("LastSeenMs").GetInt64() > 1_767_225_600_000);

        var (limited, limitedOutput, _) = await Cli("dump-state", Checkpoint, "per-user", "--limit", "3");
        Assert.Equal(0, limited);
        Assert.Equal(3, limitedOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public async Task Lock_writes_the_manifest_and_check_detects_a_stale_lock_file()
    {
        string lockFile = _dir.Sub("pipelines.lock.json");
        var (code, output, _) = await Cli("lock", SampleAssembly, "--lock-file", lockFile);
        Assert.Equal(0, code);
        Assert.Contains("wrote", output);
        string text = File.ReadAllText(lockFile);
        Assert.Contains("\"pipeline\": \"clicks-per-user\"", text);
        Assert.Contains("\"fingerprint\": \"1c9eed5b4ea5dd95\"", text);
        Assert.Equal(0, (await Cli("lock", SampleAssembly, "--lock-file", lockFile, "--check")).Code);

        File.WriteAllText(lockFile, text.Replace("\"version\": 1,\n          \"kind\": \"update-state\"", "\"version\": 7,\n          \"kind\": \"update-state\""));
        var stale = await Cli("lock", SampleAssembly, "--lock-file", lockFile, "--check");
        Assert.Equal(3, stale.Code);
        Assert.Contains("is out of date", stale.Err);
    }

    [Fact]
    public async Task Lock_reads_the_manifest_from_metadata_alone_without_the_assemblys_dependencies()
    {
        // The built assembly alone, away from PipelineDsl.Runtime and everything else it references: loading it
        // would need them; reading its metadata does not (and runs none of its code).
        string alone = _dir.Sub("alone");
        Directory.CreateDirectory(alone);
        string copy = Path.Combine(alone, Path.GetFileName(SampleAssembly));
        File.Copy(SampleAssembly, copy);
        string lockFile = _dir.Sub("alone.lock.json");
        var (code, _, error) = await Cli("lock", copy, "--lock-file", lockFile);
        Assert.True(code == 0, error);
        Assert.Contains("\"pipeline\": \"clicks-per-user\"", File.ReadAllText(lockFile));

        File.WriteAllText(_dir.Sub("not-an-assembly.dll"), "plain text");
        var bad = await Cli("lock", _dir.Sub("not-an-assembly.dll"));
        Assert.Equal(1, bad.Code);
        Assert.Contains("not-an-assembly.dll", bad.Err);
    }

    [Fact]
    public async Task Diff_reports_each_operator_and_fails_on_an_incompatible_build()
    {
        RunJob();
        string lockFile = _dir.Sub("pipelines.lock.json");
        await Cli("lock", SampleAssembly, "--lock-file", lockFile);
        var (code, output, _) = await Cli("diff", Checkpoint, lockFile);
        Assert.Equal(0, code);
        Assert.Matches(new Regex(@"per-user\s+update-state\s+v1\s+v1\s+kept"), output);
        Assert.Contains("compatible: this build can restore the checkpoint", output);
        var fromAssembly = await Cli("diff", Checkpoint, SampleAssembly);
        Assert.Equal(0, fromAssembly.Code);

        // A build that bumps per-user to version 2 without a migration.
        string bumped = _dir.Sub("bumped.lock.json");
        File.WriteAllText(bumped, File.ReadAllText(lockFile).Replace("\"version\": 1,\n          \"kind\": \"update-state\"", "\"version\": 2,\n          \"kind\": \"update-state\""));
        var (badCode, badOutput, _) = await Cli("diff", Checkpoint, bumped);
        Assert.Equal(3, badCode);
        Assert.Matches(new Regex(@"per-user\s+update-state\s+v1\s+v2\s+INCOMPATIBLE: operator 'per-user' is at version 2 but the checkpoint holds its state at version 1\. Add a \[StateMigration"), badOutput);
        Assert.Contains("incompatible: this build cannot restore the checkpoint", badOutput);

        // The same build declaring a migration from version 1 is compatible.
        string migrated = _dir.Sub("migrated.lock.json");
        File.WriteAllText(migrated, File.ReadAllText(bumped).Replace("\"idleTimeoutBatches\": 100,", "\"idleTimeoutBatches\": 100,\n          \"migratesFrom\": [1],"));
        var ok = await Cli("diff", Checkpoint, migrated);
        Assert.Equal(0, ok.Code);
        Assert.Matches(new Regex(@"per-user\s+update-state\s+v1\s+v2\s+migrated from version 1"), ok.Out);
    }

    [Fact]
    public async Task Errors_name_what_to_fix()
    {
        var missing = await Cli("inspect", _dir.Sub("nope"));
        Assert.Equal(1, missing.Code);
        Assert.Contains($"error: '{_dir.Sub("nope")}' does not exist: give the checkpoint directory of a pipeline.", missing.Err);
        Directory.CreateDirectory(_dir.Sub("empty"));
        var empty = await Cli("inspect", _dir.Sub("empty"));
        Assert.Contains("has no metadata file: it is not a PipelineDsl checkpoint", empty.Err);
        Assert.Equal(2, (await Cli("frobnicate")).Code);
        var noDll = await Cli("lock", _dir.Sub("missing.dll"));
        Assert.Contains("build the project first", noDll.Err);
    }
}
