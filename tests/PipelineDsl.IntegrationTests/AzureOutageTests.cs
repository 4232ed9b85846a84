using System.Text.RegularExpressions;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Azure.Testing;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The main job with checkpoint and output on Azure Blob Storage (Azurite) while the store goes away: a 10 s outage
/// is ridden out (the run waits, retries and continues), a longer one than the configured limit fails the run with
/// a clear error and a restart continues; the output is exactly an uninterrupted run's either way.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed partial class AzureOutageTests : IDisposable
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

    private string Prepare(int records) => AzureJob.Prepare(_dir, records, users: 5000, maxRecordsPerPartition: 250);

    [GeneratedRegex(@"^batch\s+\d+:\s+([\d,]+) records", RegexOptions.Multiline)]
    private static partial Regex BatchLine();

    private static long RecordsDone(ChildProcess p) =>
        BatchLine().Matches(p.Stdout).Sum(m => long.Parse(m.Groups[1].Value.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture));

    private Task<string> DownloadOutputAsync(string container) => AzureJob.DownloadOutputAsync(_azurite, container, _dir);

    [Fact]
    public async Task A_ten_second_outage_is_ridden_out_and_the_output_is_exact()
    {
        const int records = 200_000;
        string input = Prepare(records);
        using var job = SampleProcess.Start(new[]
        {
            "--input", input, "--azure-container", "outage", "--azure-output", "--continuous", "--batch-interval-ms", "100",
            "--max-records-per-partition", "250", "--checkpoint-interval", "5", "--azure-outage-limit-ms", "60000",
        }, Env);
        job.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal), 10, Long);
        long before = RecordsDone(job);
        _azurite.Stop();
        Thread.Sleep(TimeSpan.FromSeconds(10));
        Assert.False(job.HasExited, job.Output);
        long during = RecordsDone(job);
        Assert.True(during - before <= 2 * 8 * 250, $"the job ran on without its store: {before} -> {during} records"); // at most the batch in flight
        _azurite.Restart();

        Assert.True(Eventually.WaitUntil(() => RecordsDone(job) >= records || job.HasExited, Long), job.Output);
        job.SendSigterm();
        Assert.Equal(0, job.WaitForExit(Long));
        CrashTests.AssertSameOutput(_dir.Sub("ref-output"), await DownloadOutputAsync("outage"));
    }

    [Fact]
    public async Task An_outage_longer_than_the_limit_fails_clearly_and_a_restart_continues_exactly()
    {
        const int records = 100_000;
        string input = Prepare(records);
        var args = new[]
        {
            "--input", input, "--azure-container", "long-outage", "--azure-output", "--continuous", "--batch-interval-ms", "100",
            "--max-records-per-partition", "250", "--checkpoint-interval", "5", "--azure-outage-limit-ms", "3000",
        };
        using (var job = SampleProcess.Start(args, Env))
        {
            job.WaitForLines(l => l.StartsWith("batch", StringComparison.Ordinal), 5, Long);
            _azurite.Stop();
            Assert.Equal(1, job.WaitForExit(Long));
            Assert.Contains("did not answer for", job.Stderr);
            // Whichever write met the outage first, the checkpoint's or the output's, says the batch is not committed and runs again.
            string error = job.Stderr.Replace("\n", " ");
            Assert.True(error.Contains("start the pipeline again when the store is reachable", StringComparison.Ordinal) || error.Contains("runs again on restart", StringComparison.Ordinal), error);
            Assert.DoesNotContain("   at ", job.Stderr); // one line, not a stack trace
        }

        _azurite.Restart();
        using var again = SampleProcess.Start(args.Select(a => a == "--continuous" ? "--bounded" : a).ToArray(), Env);
        Assert.True(again.WaitForExit(Long) == 0, again.Output);
        Assert.Contains("restored from", again.Stdout);
        CrashTests.AssertSameOutput(_dir.Sub("ref-output"), await DownloadOutputAsync("long-outage"));
    }
}
