using System.Diagnostics;
using PipelineDsl.Azure.Testing;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The main job with its checkpoint in Azure Blob Storage (Azurite on loopback), killed with SIGKILL at random
/// instants and at the narrow points of the protocol: every restart waits for the killed holder's heartbeat to
/// stay still for TakeoverAfter, takes the checkpoint over and continues; the output must equal an
/// uninterrupted run's byte for byte. A second instance started beside a live one is refused.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class AzureCrashTests(Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);
    private readonly AzuriteServer _azurite = AzuriteServer.Start();

    public void Dispose() => _azurite.Dispose();

    private Dictionary<string, string> Env(string? crashAt = null) => AzureJob.Env(_azurite, crashAt);

    private static string[] AzureJobArgs(string input, string container, string output) => new[]
    {
        "--input", input, "--azure-container", container, "--output", output, "--bounded",
        "--max-records-per-partition", "500", "--checkpoint-interval", "5", "--takeover-after-ms", "1000",
    };

    private int RunToExit(string[] args, string? crashAt = null)
    {
        using var p = SampleProcess.Start(args, Env(crashAt));
        int code = p.WaitForExit(Long);
        if (code != 0 && crashAt is null) Assert.Fail($"exit {code}: {p.Stderr}");
        return code;
    }

    [Fact]
    public void Twenty_kill_9s_with_the_checkpoint_in_Azure_give_exactly_the_uninterrupted_output()
    {
        using var dir = new TempDir();
        // The input, and the reference: the same job, uninterrupted, with its checkpoint in a local directory.
        string input = AzureJob.Prepare(dir, 400_000, users: 20000, maxRecordsPerPartition: 500);

        var crashPoints = new Queue<string>(new[] { "after-offsets", "after-sinks", "after-commit", "after-offsets", "after-sinks", "after-commit" });
        var random = TestRandom.Create(20261201, log);
        string output = dir.Sub("output");
        var args = AzureJobArgs(input, "crash", output);
        int kills = 0, pointKills = 0, runs = 0;
        var takeovers = new List<TimeSpan>();
        while (kills < 20 && runs < 80)
        {
            runs++;
            bool usePoint = runs % 4 == 0 && crashPoints.Count > 0;
            var watch = Stopwatch.StartNew();
            using var p = SampleProcess.Start(args, Env(usePoint ? crashPoints.Dequeue() : null));
            if (usePoint)
            {
                int code = p.WaitForExit(Long);
                if (code == 0) break; // it finished before reaching the point
                Assert.True(code == 137 || p.Stderr.Contains("PIPELINEDSL_CRASH_AT: killing", StringComparison.Ordinal), $"exit {code}: {p.Stderr}");
                kills++;
                pointKills++;
                continue;
            }

            // Kill after a random number of new batches, at a random instant within the next; the time to the first
            // batch after a kill is the takeover: the dead holder's heartbeat must stay still for TakeoverAfter.
            p.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal) && !l.Contains("replayed", StringComparison.Ordinal), 1, Long);
            if (runs > 1) takeovers.Add(watch.Elapsed);
            if (p.HasExited)
            {
                Assert.True(p.WaitForExit(Long) == 0, p.Stderr);
                break;
            }

            p.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal), random.Next(0, 6), Long);
            Thread.Sleep(random.Next(0, 30));
            if (p.HasExited)
            {
                Assert.True(p.WaitForExit(Long) == 0, p.Stderr);
                break;
            }

            p.KillHard();
            p.WaitForExit(Long);
            kills++;
        }

        Assert.True(kills >= 20, $"only {kills} kills landed before the job finished ({runs} runs); make the input larger");
        Assert.True(pointKills >= 3, $"only {pointKills} kills at protocol points");
        RunToExit(args);
        CrashTests.AssertSameOutput(dir.Sub("ref-output"), output);
        takeovers.Sort();
        log.WriteLine($"{kills} kills ({pointKills} at protocol points) over {runs} runs; output identical to the uninterrupted run. "
                      + $"Start after a kill to the first new batch (process start, takeover after 1 s of silence, recovery): median {takeovers[takeovers.Count / 2].TotalSeconds:F1} s, max {takeovers[^1].TotalSeconds:F1} s");
    }

    [Fact]
    public void A_second_instance_beside_a_live_one_is_refused_and_names_it()
    {
        using var dir = new TempDir();
        string input = dir.Sub("input");
        SampleProcess.RunToCompletion(new[] { "generate", "--records", "2000", "--files", "2", "--output", input }, Long);
        var args = new[] { "--input", input, "--azure-container", "twice", "--output", dir.Sub("output"), "--continuous", "--batch-interval-ms", "200" };
        using var first = SampleProcess.Start(args, Env());
        first.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal), 1, Long);

        using var second = SampleProcess.Start(args, Env());
        Assert.Equal(1, second.WaitForExit(Long));
        Assert.Contains("is in use by pipeline 'clicks-per-user'", second.Stderr);
        Assert.Contains("heartbeat is moving", second.Stderr);

        first.SendSigterm();
        Assert.Equal(0, first.WaitForExit(Long));

        // Released on a clean stop: the next start takes it at once (not after TakeoverAfter, 5 s here) and restores.
        var watch = Stopwatch.StartNew();
        using var third = SampleProcess.Start(args, Env());
        Assert.True(third.WaitForOutput("output ", Long), third.Output);
        third.SendSigterm();
        Assert.Equal(0, third.WaitForExit(Long));
        Assert.Contains("restored from", third.Stdout);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4.5), $"the released checkpoint was taken after {watch.Elapsed}");
    }
}
