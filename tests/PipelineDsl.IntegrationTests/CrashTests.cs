using System.Diagnostics;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The main job, killed with SIGKILL at random moments and at the narrow points of the checkpoint protocol,
/// restarted each time, must produce exactly the output of an uninterrupted run: no record lost, none twice.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public class CrashTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);

    private static string[] JobArgs(string input, string checkpoint, string output) => new[]
    {
        "--input", input, "--checkpoint", checkpoint, "--output", output, "--bounded",
        "--max-records-per-partition", "500", "--checkpoint-interval", "5",
    };

    internal static void AssertSameOutput(string expectedDir, string actualDir)
    {
        var expected = Directory.GetFiles(expectedDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        var actual = Directory.GetFiles(actualDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, actual); // including: no temporary file left behind by a kill
        foreach (var file in expected)
        {
            Assert.True(File.ReadAllBytes(Path.Combine(expectedDir, file!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actualDir, file!))),
                $"{file} differs between the uninterrupted and the crashed run");
        }
    }

    [Fact]
    public void A_million_records_survive_more_than_twenty_kill_9s_with_exactly_the_uninterrupted_output()
    {
        using var dir = new TempDir();
        string input = dir.Sub("input");
        SampleProcess.RunToCompletion(new[] { "generate", "--records", "1000000", "--files", "8", "--users", "20000", "--output", input }, Long);

        var watch = Stopwatch.StartNew();
        SampleProcess.RunToCompletion(JobArgs(input, dir.Sub("ref-checkpoint"), dir.Sub("ref-output")), Long);
        var uninterrupted = watch.Elapsed;

        // Every expected output line is a non-bot input click, once.
        long humanClicks = Directory.GetFiles(input).SelectMany(File.ReadLines).Count(l => l.EndsWith(",0", StringComparison.Ordinal));
        long outputLines = Directory.GetFiles(dir.Sub("ref-output")).Sum(f => File.ReadLines(f).LongCount());
        Assert.Equal(humanClicks, outputLines);
        Assert.True(humanClicks > 900_000);

        // Kill points inside the protocol: mid checkpoint-file writes, between sinks and commit, after commit.
        var crashPoints = new Queue<string>(new[]
        {
            "checkpoint-write-before-rename@state/", "checkpoint-write-before-fsync@offsets/", "after-sinks",
            "checkpoint-write-before-rename@commits/", "after-offsets", "after-commit", "checkpoint-write-before-fsync@state/",
            "checkpoint-write-before-rename@part-",
        });
        var random = TestRandom.Create(20261121, log);
        string checkpoint = dir.Sub("checkpoint"), output = dir.Sub("output");
        var (kills, pointKills, randomKills, runs) = KillUntilDone(JobArgs(input, checkpoint, output), crashPoints, random, targetKills: 24, kills =>
        {
            // Damage the newest checkpoint files along the way: recovery must fall back, never trust them.
            if (kills == 8) Truncate(NewestFile(Path.Combine(checkpoint, "state")));
            if (kills == 14) Garble(NewestFile(Path.Combine(checkpoint, "commits")));
        });

        Assert.True(kills >= 20, $"only {kills} kills landed before the job finished ({runs} runs); make the input larger");
        Assert.True(pointKills >= 5, $"only {pointKills} kills at protocol points");
        SampleProcess.RunToCompletion(JobArgs(input, checkpoint, output), Long);
        AssertSameOutput(dir.Sub("ref-output"), output);
        log.WriteLine($"uninterrupted run {uninterrupted.TotalSeconds:F1} s; {kills} kills ({randomKills} at random instants, {pointKills} at protocol points) over {runs} runs; output identical ({outputLines:N0} lines)");
    }

    /// <summary>
    /// Runs the job until it finishes, killing it with SIGKILL: every third run at the next of <paramref name="crashPoints"/>,
    /// the others at a random instant. <paramref name="afterKill"/> gets the number of kills so far after each.
    /// </summary>
    private static (int Kills, int PointKills, int RandomKills, int Runs) KillUntilDone(string[] args, Queue<string> crashPoints, Random random, int targetKills, Action<int> afterKill)
    {
        int kills = 0, randomKills = 0, pointKills = 0, runs = 0;
        while (kills < targetKills && runs < targetKills * 4)
        {
            runs++;
            bool usePoint = runs % 3 == 0 && crashPoints.Count > 0;
            var env = usePoint ? new Dictionary<string, string> { ["PIPELINEDSL_CRASH_AT"] = crashPoints.Dequeue() } : null;
            using var p = SampleProcess.Start(args, env);
            if (usePoint)
            {
                int code = p.WaitForExit(Long);
                if (code == 137 || p.Stderr.Contains("PIPELINEDSL_CRASH_AT: killing", StringComparison.Ordinal))
                {
                    kills++;
                    pointKills++;
                }
                else
                {
                    Assert.True(code == 0, $"exit {code}: {p.Stderr}");
                    break; // it finished before reaching the point: the job is done
                }
            }
            else
            {
                // Half the kills land at a random instant early in the run (startup, recovery, replay);
                // the others after a random number of newly committed batches, at a random instant within the next.
                if (random.Next(2) == 0) Thread.Sleep(random.Next(50, 400));
                else
                {
                    p.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal) && !l.Contains("replayed", StringComparison.Ordinal), random.Next(1, 6), Long);
                    Thread.Sleep(random.Next(0, 30));
                }

                if (p.HasExited)
                {
                    Assert.True(p.WaitForExit(Long) == 0, p.Stderr);
                    break; // finished before the kill
                }

                p.KillHard();
                p.WaitForExit(Long);
                kills++;
                randomKills++;
            }

            afterKill(kills);
        }

        return (kills, pointKills, randomKills, runs);
    }

    [Fact]
    public void On_the_RocksDB_backend_kill_9s_during_incremental_uploads_and_a_lost_machine_keep_the_output_exact()
    {
        using var dir = new TempDir();
        string input = dir.Sub("input");
        SampleProcess.RunToCompletion(new[] { "generate", "--records", "400000", "--files", "8", "--users", "20000", "--output", input }, Long);
        // The reference is the in-memory backend's uninterrupted run: the backends must agree too.
        SampleProcess.RunToCompletion(JobArgs(input, dir.Sub("ref-checkpoint"), dir.Sub("ref-output")), Long);

        string checkpoint = dir.Sub("checkpoint"), output = dir.Sub("output"), rocksdb = dir.Sub("rocksdb");
        var args = JobArgs(input, checkpoint, output).Concat(new[] { "--rocksdb", rocksdb }).ToArray();
        // Kill points of the incremental snapshot: mid-upload of a shared table file, after the uploads before the snapshot file.
        var crashPoints = new Queue<string>(new[]
        {
            "checkpoint-write-before-rename@shared/", "after-shared-upload", "checkpoint-write-before-fsync@shared/", "after-commit",
            "checkpoint-write-before-rename@state/", "after-sinks",
        });
        var random = TestRandom.Create(20261202, log);
        var (kills, pointKills, randomKills, runs) = KillUntilDone(args, crashPoints, random, targetKills: 14, kills =>
        {
            // The machine's disk lost once: the state comes back from the checkpoint store alone.
            if (kills == 7 && Directory.Exists(rocksdb)) Directory.Delete(rocksdb, recursive: true);
        });

        Assert.True(kills >= 12, $"only {kills} kills landed before the job finished ({runs} runs); make the input larger");
        Assert.True(pointKills >= 4, $"only {pointKills} kills at protocol points");
        string last = SampleProcess.RunToCompletion(args, Long);
        AssertSameOutput(dir.Sub("ref-output"), output);
        Assert.True(Directory.GetFiles(Path.Combine(checkpoint, "shared")).Length > 0, "the checkpoint holds RocksDB's shared files");
        log.WriteLine($"{kills} kills ({randomKills} at random instants, {pointKills} at protocol points) over {runs} runs; output identical to the in-memory run. Last run: {last.Split('\n').LastOrDefault(l => l.Length > 0)}");
    }

    private static string? NewestFile(string folder) =>
        Directory.Exists(folder) ? Directory.GetFiles(folder).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal).LastOrDefault() : null;

    private static void Truncate(string? file)
    {
        if (file is null) return;
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
    }

    private static void Garble(string? file)
    {
        if (file is not null) File.WriteAllText(file, "not a checkpoint file");
    }

    [Fact]
    public void A_second_process_on_the_same_checkpoint_is_refused_and_sigterm_stops_cleanly()
    {
        using var dir = new TempDir();
        string input = dir.Sub("input");
        SampleProcess.RunToCompletion(new[] { "generate", "--records", "5000", "--files", "2", "--output", input }, Long);
        var args = new[] { "--input", input, "--checkpoint", dir.Sub("checkpoint"), "--output", dir.Sub("output"), "--continuous", "--batch-interval-ms", "200" };

        using var first = SampleProcess.Start(args);
        Assert.True(first.WaitForOutput("batch ", Long), first.Stderr);

        using var second = SampleProcess.Start(args);
        Assert.Equal(1, second.WaitForExit(Long));
        Assert.Contains("is in use by pipeline 'clicks-per-user', process " + first.Id, second.Stderr);
        Assert.Contains("Only one process may run a pipeline on a checkpoint", second.Stderr);

        // 2 files of 2,500 lines at 1,000 per partition per batch: batch 2 is the last.
        Assert.True(first.WaitForOutput("batch     2:", Long), first.Stdout + first.Stderr);
        first.SendSigterm();
        Assert.Equal(0, first.WaitForExit(Long));
        Assert.Contains("SIGTERM: finishing the current batch, then stopping", first.Stderr);
        Assert.Contains("done:", first.Stdout);

        // The lock died with the process: a new run restores and finds nothing new to do.
        string again = SampleProcess.RunToCompletion(new[] { "--input", input, "--checkpoint", dir.Sub("checkpoint"), "--output", dir.Sub("output"), "--bounded" }, Long);
        Assert.Contains("restored from snapshot", again);
        Assert.Contains("ran 0 batches", again);
    }

    [Fact]
    public void Malformed_input_fails_with_file_and_position_or_goes_to_dead_letters()
    {
        using var dir = new TempDir();
        string input = dir.Sub("input");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,/,1,0\nu2,/,oops,0\nu3,/,3,1\n");
        using (var p = SampleProcess.Start(new[] { "--input", input, "--checkpoint", dir.Sub("c1"), "--output", dir.Sub("o1"), "--bounded" }))
        {
            Assert.Equal(1, p.WaitForExit(Long));
            Assert.Contains("error: Source 'clicks', partition 'a.csv', position 9: cannot decode the record \"u2,/,oops,0\": the timestamp 'oops' is not a whole number", p.Stderr);
            Assert.False(Directory.Exists(dir.Sub("o1")) && Directory.EnumerateFiles(dir.Sub("o1")).Any());
        }

        SampleProcess.RunToCompletion(new[] { "--input", input, "--checkpoint", dir.Sub("c2"), "--output", dir.Sub("o2"), "--bounded", "--dead-letter" }, Long);
        Assert.Equal("u1,1,1\n", File.ReadAllText(Path.Combine(dir.Sub("o2"), "part-0000000000.txt")));
        Assert.Contains("\"position\":9", File.ReadAllText(Path.Combine(dir.Sub("c2"), "dead-letter", "batch-0000000000.jsonl")));

        using var missing = SampleProcess.Start(new[] { "--input", dir.Sub("nope"), "--checkpoint", dir.Sub("c3"), "--bounded" });
        Assert.Equal(1, missing.WaitForExit(Long));
        Assert.Contains($"error: The input directory '{dir.Sub("nope")}' does not exist", missing.Stderr);

        using var usage = SampleProcess.Start(new[] { "--max-records-per-partition", "zero" });
        Assert.Equal(2, usage.WaitForExit(Long));
        Assert.Contains("error: Cannot parse argument 'zero' for option '--max-records-per-partition'", usage.Stderr);
        Assert.False(Directory.Exists(dir.Sub("c4")));

        using var zero = SampleProcess.Start(new[] { "--max-records-per-partition", "0", "--checkpoint", dir.Sub("c4") });
        Assert.Equal(2, zero.WaitForExit(Long));
        Assert.Contains("error: --max-records-per-partition must be 1 or more, not 0.", zero.Stderr);
        Assert.False(Directory.Exists(dir.Sub("c4")), "a refused command line must not create the checkpoint");
    }
}
