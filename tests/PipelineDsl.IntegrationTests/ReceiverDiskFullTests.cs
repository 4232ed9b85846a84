using System.Globalization;
using System.Net;
using System.Text;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The HTTP receiver when its log's disk fills while clients keep posting and the service is SIGKILLed: requests are
/// refused with 507 (nothing added), the service restarts on the full disk, takes requests again once space returns,
/// and every request answered 200 is counted exactly once. The log lives on a real 4 MiB tmpfs (the tests run as root,
/// as CI does); the checkpoint and the output on the ordinary disk.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class ReceiverDiskFullTests(Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(4);
    private readonly TempDir _dir = new();
    private string? _mount;

    public void Dispose()
    {
        if (_mount is not null) Tmpfs.Unmount(_mount);
        _dir.Dispose();
    }

    [Fact]
    public async Task Requests_are_refused_with_507_on_a_full_disk_across_a_kill_and_every_acknowledged_click_is_counted_once()
    {
        _mount = _dir.Sub("small");
        Directory.CreateDirectory(_mount);
        Tmpfs.Mount(_mount, "4m");
        string filler = Path.Combine(_mount, "filler");
        const int requests = 600, perRequest = 200, users = 40;
        string[] args =
        {
            "--receive", Path.Combine(_mount, "wal"), "--checkpoint", _dir.Sub("checkpoint"), "--output", _dir.Sub("output"),
            "--Pipeline:BatchInterval=00:00:00.100", "--Pipeline:MaxRecordsPerPartition=20", "--Receiver:SegmentBytes=65536",
        };
        string Line(int i) => $"u{i % users},/p,{i},0";
        var bodies = Enumerable.Range(0, requests).Select(r => string.Join("\n", Enumerable.Range(r * perRequest, perRequest).Select(Line)) + "\n").ToArray();
        var expected = Enumerable.Range(0, requests * perRequest).GroupBy(i => "u" + (i % users)).ToDictionary(g => g.Key, g => (long)g.Count());

        var (job, url) = await SampleProcess.StartServeAsync(args, Long);
        var current = (Job: job, Url: url);
        var gate = new object();
        // Whatever fails below, the service running at that moment is stopped (a failed test must not leave it running).
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
            int acknowledged = 0, full = 0, failures = 0;
            string? refusal = null;

            async Task Send(int lane, int lanes)
            {
                for (int r = lane; r < requests; r += lanes)
                {
                    while (true)
                    {
                        string target;
                        lock (gate) target = current.Url;
                        try
                        {
                            using var message = new HttpRequestMessage(HttpMethod.Post, target + "/ingest") { Content = new StringContent(bodies[r], Encoding.UTF8, "text/plain") };
                            message.Headers.Add("Idempotency-Key", "r" + r);
                            using var response = await http.SendAsync(message);
                            if (response.StatusCode == HttpStatusCode.OK)
                            {
                                Interlocked.Increment(ref acknowledged);
                                break;
                            }

                            if (response.StatusCode == HttpStatusCode.InsufficientStorage)
                            {
                                Interlocked.Increment(ref full);
                                refusal ??= await response.Content.ReadAsStringAsync();
                            }
                            else Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                        {
                            Interlocked.Increment(ref failures); // killed mid-request, or not listening yet
                        }

                        await Task.Delay(50);
                    }
                }
            }

            // Fills the tmpfs to the last byte, and keeps it full while segments are deleted under it.
            using var keepFull = new CancellationTokenSource();
            async Task KeepFull()
            {
                await using var fill = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
                var block = new byte[4096];
                while (!keepFull.IsCancellationRequested)
                {
                    try
                    {
                        while (true) fill.Write(block);
                    }
                    catch (IOException)
                    {
                        // full
                    }

                    await Task.Delay(20);
                }
            }

            void KillAndRestart()
            {
                ChildProcess dead;
                lock (gate) dead = current.Job;
                dead.KillHard();
                dead.WaitForExit(Long);
                dead.Dispose();
                var (next, nextUrl) = SampleProcess.StartServeAsync(args, Long).GetAwaiter().GetResult();
                lock (gate) current = (next, nextUrl);
            }

            var sending = Task.WhenAll(Enumerable.Range(0, 4).Select(lane => Send(lane, 4)));
            await Eventually.UntilAsync(() => Volatile.Read(ref acknowledged) >= requests / 5, Long, "a fifth of the requests acknowledged");
            var filling = Task.Run(KeepFull);
            await Eventually.UntilAsync(() => Volatile.Read(ref full) >= 10, Long, "ten requests refused with 507");
            int acknowledgedWhenFull = Volatile.Read(ref acknowledged);
            KillAndRestart(); // on the full disk
            int fullBeforeRestart = Volatile.Read(ref full);
            await Eventually.UntilAsync(() => Volatile.Read(ref full) >= fullBeforeRestart + 10, Long, "ten more 507s after the restart on the full disk");
            keepFull.Cancel();
            await filling;
            File.Delete(filler); // space returns
            await Eventually.UntilAsync(() => Volatile.Read(ref acknowledged) >= acknowledgedWhenFull + requests / 5, Long, "requests acknowledged again");
            KillAndRestart();
            await sending;
            log.WriteLine($"{requests} requests acknowledged; {full} answered 507, {failures} failed in flight; a refusal: {refusal}");

            Dictionary<string, long> Totals() => UserCounts.FromOutput(_dir.Sub("output"));

            await Eventually.UntilAsync(() => Totals().Values.Sum() >= expected.Values.Sum(), Long, "every acknowledged click counted");
            await Task.Delay(1000); // a duplicate would show in a later batch
            lock (gate) current.Job.SendSigterm();
            lock (gate) Assert.True(current.Job.WaitForExit(Long) == 0, current.Job.Output);
            current.Job.Dispose();

            Assert.Contains("no space left", refusal);
            Assert.Contains("Nothing acknowledged is lost", refusal);
            Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), Totals().OrderBy(p => p.Key, StringComparer.Ordinal));
        }
        finally
        {
            lock (gate) current.Job.Dispose();
        }
    }
}
