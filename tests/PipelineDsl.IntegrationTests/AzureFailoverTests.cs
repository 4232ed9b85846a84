using System.Diagnostics;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Azure.Testing;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// High availability on Azurite with real processes: replicas of the main job (<c>--standby</c>) on one checkpoint
/// in Azure Blob Storage, writing their output to it too (<c>--azure-output</c>) or to a shared folder. The active is killed with SIGKILL again and again, a standby takes over each time, a
/// new replica replaces the dead one; a paused active (SIGSTOP) is taken over and, woken (SIGCONT), is fenced and
/// writes nothing. The output must equal an uninterrupted run's byte for byte.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class AzureFailoverTests(Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);
    private readonly AzuriteServer _azurite = AzuriteServer.Start();
    private readonly TempDir _dir = new();

    public void Dispose()
    {
        _azurite.Dispose();
        _dir.Dispose();
    }

    private Dictionary<string, string> Env => AzureJob.Env(_azurite);

    private string[] ReplicaArgs(string input, string container, bool blobOutput = false) => new[]
    {
        "--input", input, "--azure-container", container, blobOutput ? "--azure-output" : "--output", blobOutput ? null : _dir.Sub("output"), "--bounded", "--standby",
        "--max-records-per-partition", "500", "--checkpoint-interval", "5", "--takeover-after-ms", "1000",
    }.OfType<string>().ToArray();

    private string Prepare(int records) => AzureJob.Prepare(_dir, records, users: 20000, maxRecordsPerPartition: 500);

    private Task<string> DownloadOutputAsync(string container) => AzureJob.DownloadOutputAsync(_azurite, container, _dir);

    private static bool IsActive(ChildProcess p) => p.Stdout.Contains("took over the checkpoint", StringComparison.Ordinal);

    private static int NewBatches(ChildProcess p) =>
        p.Stdout.Split('\n').SkipWhile(l => !l.Contains("took over the checkpoint", StringComparison.Ordinal))
            .Count(l => l.StartsWith("batch", StringComparison.Ordinal) && !l.Contains("replayed", StringComparison.Ordinal));

    [Fact]
    public async Task Three_replicas_writing_to_the_object_store_survive_twenty_kills_of_the_active_over_a_million_records_with_exactly_the_uninterrupted_output()
    {
        // 20 kills in CI; PIPELINEDSL_FAILOVER_KILLS=100 for the long run (the input grows with it).
        int wanted = int.TryParse(Environment.GetEnvironmentVariable("PIPELINEDSL_FAILOVER_KILLS"), out int k) && k > 0 ? k : 20;
        string input = Prepare(Math.Max(1_000_000, wanted * 50_000));
        var args = ReplicaArgs(input, "failover", blobOutput: true);
        var random = TestRandom.Create(20261202, log);
        var replicas = new List<ChildProcess>();
        try
        {
            for (int i = 0; i < 3; i++) replicas.Add(SampleProcess.Start(args, Env));
            var takeovers = new List<TimeSpan>();
            int kills = 0;
            bool finished = false;
            while (kills < wanted && !finished)
            {
                // The active: the replica that took the checkpoint over. Wait for it, and for a few of its batches.
                ChildProcess? active = null;
                Assert.True(Eventually.WaitUntil(() => (active = replicas.FirstOrDefault(r => !r.HasExited && IsActive(r))) is not null || replicas.All(r => r.HasExited), Long),
                    "no replica became active:\n" + string.Join("\n---\n", replicas.Select(r => r.Output)));
                if (active is null)
                {
                    finished = true;
                    break;
                }

                active.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal), random.Next(1, 6) + active.Stdout.Split('\n').Count(l => l.StartsWith("batch", StringComparison.Ordinal)), Long);
                Thread.Sleep(random.Next(0, 30));
                if (active.HasExited)
                {
                    finished = true; // it processed everything and stopped
                    break;
                }

                active.KillHard();
                active.WaitForExit(Long);
                kills++;
                var killedAt = Stopwatch.StartNew();
                replicas.Remove(active);
                active.Dispose();
                replicas.Add(SampleProcess.Start(args, Env)); // a new standby replaces it

                // Takeover: from the kill to the first new batch of the next active (1 s of silence, then recovery).
                ChildProcess? next = null;
                if (Eventually.WaitUntil(() => (next = replicas.FirstOrDefault(r => IsActive(r) && NewBatches(r) > 0)) is not null || replicas.All(r => r.HasExited), Long) && next is not null)
                    takeovers.Add(killedAt.Elapsed);
            }

            foreach (var r in replicas) Assert.True(r.WaitForExit(Long) == 0, r.Output);
            Assert.True(kills >= wanted, $"only {kills} of {wanted} kills landed before the job finished; make the input larger");

            // A last run (not a standby) finds nothing left to do, and the output is exact.
            using var last = SampleProcess.Start(args.Where(a => a != "--standby").ToArray(), Env);
            Assert.Equal(0, last.WaitForExit(Long));
            Assert.Contains("ran 0 batches", last.Stdout);
            CrashTests.AssertSameOutput(_dir.Sub("ref-output"), await DownloadOutputAsync("failover"));
            takeovers.Sort();
            log.WriteLine($"{kills} kills of the active among 3 replicas over {Math.Max(1_000_000, wanted * 50_000):N0} records; output identical to the uninterrupted run. Kill to the next active's first new batch "
                          + $"(TakeoverAfter 1 s): median {takeovers[takeovers.Count / 2].TotalSeconds:F2} s, max {takeovers[^1].TotalSeconds:F2} s over {takeovers.Count} takeovers");
        }
        finally
        {
            foreach (var r in replicas) r.Dispose();
        }
    }

    [Fact]
    public async Task A_paused_active_is_taken_over_and_when_woken_is_fenced_and_writes_nothing()
    {
        string input = Prepare(300_000);
        var args = ReplicaArgs(input, "zombie");
        using var first = SampleProcess.Start(args, Env);
        first.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal), 5, Long);
        using var second = SampleProcess.Start(args, Env);
        Assert.True(second.WaitForOutput("standby: following", Long), second.Output);

        first.Signal("STOP");
        DateTimeOffset woken;
        try
        {
            Assert.True(second.WaitForOutput("took over the checkpoint", Long), second.Output);
            second.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal) && !l.Contains("replayed", StringComparison.Ordinal), 5, Long);
        }
        finally
        {
            woken = DateTimeOffset.UtcNow;
            first.Signal("CONT");
        }

        // Woken, it finds the lock taken at its next checkpoint write or before its next output, and stops. Stopped
        // in the middle of writing an output file, it can instead fail there: the new holder's file sink removed the
        // temporary files it found when it started (its own would be left by a crash), this one's among them. Or,
        // woken between its lock check and its commit, its create-only write of a batch the new holder already
        // committed is refused by the store.
        Assert.Equal(1, first.WaitForExit(Long));
        bool fenced = first.Stderr.Contains("lost the lock", StringComparison.Ordinal) && first.Stderr.Contains("epoch 1", StringComparison.Ordinal);
        bool stoppedInSink = first.Stderr.Contains("Sink 'totals' failed to write batch", StringComparison.Ordinal);
        bool refusedByTheStore = first.Stderr.Contains("was written by another process meanwhile", StringComparison.Ordinal)
                                 && first.Stderr.Contains("writes nothing more and stops", StringComparison.Ordinal);
        Assert.True(fenced || stoppedInSink || refusedByTheStore, first.Stderr);
        Assert.Equal(0, second.WaitForExit(Long));

        // Nothing in the checkpoint was written by the woken holder: every offsets and commit file of epoch 1 is older
        // than the wake (blob times have whole seconds; the first holder was stopped for seconds before it, so a
        // write it had in flight when stopped is still older than the wake's second). The first holder may have
        // planned (offsets) and committed a batch or two past the state the standby had followed when it was stopped:
        // those are epoch 1 and legitimately so; every later file is the second holder's, epoch 2.
        var container = new BlobContainerClient(_azurite.ConnectionString, "zombie", new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06));
        long takenAt = long.Parse(System.Text.RegularExpressions.Regex.Match(second.Stdout, @"state through batch (\d+); now active").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var wokenSecond = new DateTimeOffset(woken.Ticks - woken.Ticks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
        int checkedFiles = 0;
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, "clicks-per-user/", default))
        {
            var name = blob.Name.Split('/');
            if (name.Length != 3 || name[1] is not ("offsets" or "commits")) continue;
            if (blob.Metadata["epoch"] == "1")
            {
                Assert.True(blob.Properties.LastModified < wokenSecond, $"'{blob.Name}' (epoch 1) was written at {blob.Properties.LastModified:O}, after the paused holder was woken at {woken:O}");
                continue;
            }

            Assert.Equal("2", blob.Metadata["epoch"]);
            if (long.Parse(name[2], System.Globalization.CultureInfo.InvariantCulture) > takenAt + 1) checkedFiles++;
        }

        Assert.True(checkedFiles > 0, "no file of the second holder was found");
        CrashTests.AssertSameOutput(_dir.Sub("ref-output"), _dir.Sub("output"));
        log.WriteLine($"taken over with state through batch {takenAt}; the woken holder {(fenced ? "was fenced" : "failed in its sink write")}; {checkedFiles} offsets and commit files after it, all of epoch 2; output exact");
    }

    [Fact]
    public void The_ha_demo_runs_in_one_command_and_finds_its_output_exact()
    {
        using var p = SampleProcess.Start(new[] { "ha-demo", "--records", "200000", "--kills", "2", "--kill-every-ms", "3000" }, workingDirectory: _dir.Path);
        Assert.True(p.WaitForExit(Long) == 0, p.Output);
        Assert.Contains("kill -9 replica", p.Stdout);
        Assert.Contains("took over the checkpoint", p.Stdout);
        Assert.Contains("output identical to an uninterrupted run", p.Stdout);
        Assert.True(Directory.Exists(Path.Combine(_dir.Path, "ha-demo-work")));
    }
}
