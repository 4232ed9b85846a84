using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The HTTP receiver under a flood: senders far faster than the pipeline processes. The backlog (read from the service's
/// own Prometheus endpoint) must stay at or under its bound, the excess must be refused with 503, the process's memory
/// must stay flat while many times its size is posted, and every request answered 200 must be counted exactly once.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public class ReceiverBackpressureTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_flood_faster_than_processing_is_held_at_the_backlog_bound_with_503s_and_flat_memory_and_loses_nothing_accepted()
    {
        const int bound = 40, linesPerRequest = 1_000, users = 50, senders = 16;
        var flood = TimeSpan.FromSeconds(20);
        using var dir = new TempDir();
        string[] args =
        {
            "--receive", dir.Sub("wal"), "--checkpoint", dir.Sub("checkpoint"), "--output", dir.Sub("output"),
            // Two requests per 200 ms batch: about 10,000 clicks a second processed, far below what 16 senders post.
            "--Pipeline:BatchInterval=00:00:00.200", "--Pipeline:MaxRecordsPerPartition=2", $"--Receiver:MaxBacklogRecords={bound}",
        };
        var (job, url) = await SampleProcess.StartServeAsync(args, Long);
        using var _ = job;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };

        long accepted = 0, refused = 0, bytesPosted = 0;
        var acceptedClicks = new long[users];
        using var stopFlood = new CancellationTokenSource(flood);

        async Task Send(int sender)
        {
            for (int n = 0; !stopFlood.IsCancellationRequested; n++)
            {
                // Request n of sender s: 1,000 clicks of users (s + n + i) % 50, none a bot.
                var body = new StringBuilder();
                for (int i = 0; i < linesPerRequest; i++) body.Append('u').Append((sender + n + i) % users).Append(",/p,").Append(i).Append(",0\n");
                string text = body.ToString();
                while (!stopFlood.IsCancellationRequested)
                {
                    using var content = new StringContent(text, Encoding.UTF8, "text/plain");
                    using var message = new HttpRequestMessage(HttpMethod.Post, url + "/ingest") { Content = content };
                    message.Headers.Add("Idempotency-Key", $"s{sender}-r{n}");
                    using var response = await http.SendAsync(message);
                    Interlocked.Add(ref bytesPosted, text.Length);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref accepted);
                        for (int i = 0; i < linesPerRequest; i++) Interlocked.Increment(ref acceptedClicks[(sender + n + i) % users]);
                        break;
                    }

                    Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                    Assert.NotNull(response.Headers.RetryAfter);
                    Interlocked.Increment(ref refused);
                    await Task.Delay(10); // a flood: far sooner than the Retry-After the service asks for
                }
            }
        }

        // Every 250 ms: the backlog as the service reports it, and the process's resident memory.
        var samples = new List<(double At, long Backlog, long RssBytes)>();
        var clock = Stopwatch.StartNew();
        async Task Sample()
        {
            while (!stopFlood.IsCancellationRequested)
            {
                string metrics = await http.GetStringAsync(url + "/metrics");
                var backlog = Regex.Match(metrics, @"^pipelinedsl_receiver_backlog(?:_records)?\{[^}]*\} (\d+)", RegexOptions.Multiline);
                long rss = ResidentBytes(job.Id);
                if (backlog.Success) lock (samples) samples.Add((clock.Elapsed.TotalSeconds, long.Parse(backlog.Groups[1].Value, CultureInfo.InvariantCulture), rss));
                await Task.Delay(250);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, senders).Select(Send).Append(Sample()));
        Assert.NotEmpty(samples);
        foreach (var s in samples.Where((_, i) => i % 8 == 0)) log.WriteLine($"{s.At,5:F1} s: backlog {s.Backlog,3}, resident {s.RssBytes >> 20} MiB");
        log.WriteLine($"{accepted} requests accepted, {refused} refused with 503, {bytesPosted >> 20} MiB posted in {flood.TotalSeconds} s");

        // Held at the bound: the flood filled the backlog, never beyond it, and the rest was refused.
        Assert.All(samples, s => Assert.True(s.Backlog <= bound, $"the backlog was {s.Backlog} at {s.At:F1} s, above its bound of {bound}"));
        Assert.Contains(samples, s => s.Backlog >= bound - 2);
        Assert.True(refused > accepted, $"{refused} refusals against {accepted} acceptances: the senders did not outrun processing");

        // Memory flat: after a warm-up, resident memory grows by less than 40 MiB while the senders post several times that.
        var warm = samples.Where(s => s.At >= 5).ToList();
        Assert.True(warm.Count >= 20, $"only {warm.Count} samples after the warm-up");
        long early = warm.Take(4).Max(s => s.RssBytes), late = warm.Max(s => s.RssBytes);
        Assert.True(bytesPosted > 3L * (40 << 20), $"only {bytesPosted >> 20} MiB posted: not a flood");
        Assert.True(late - early < 40L << 20, $"resident memory grew from {early >> 20} MiB to {late >> 20} MiB during the flood");

        // Nothing accepted is lost, nothing is counted twice: each user's final count is the clicks accepted for them.
        var expected = Enumerable.Range(0, users).Where(u => acceptedClicks[u] > 0).ToDictionary(u => "u" + u, u => acceptedClicks[u]);
        Dictionary<string, long> Totals() => UserCounts.FromOutput(dir.Sub("output"));

        await Eventually.UntilAsync(() => Totals().Values.Sum() >= expected.Values.Sum(), Long, "every accepted click counted");
        await Task.Delay(1000); // a duplicate would show in a later batch
        job.SendSigterm();
        Assert.True(job.WaitForExit(Long) == 0, job.Output);
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), Totals().OrderBy(p => p.Key, StringComparer.Ordinal));
    }

    /// <summary>A process's resident set size, from <c>/proc/PID/status</c> (VmRSS, in kB).</summary>
    private static long ResidentBytes(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"/proc/{pid}/status has no VmRSS line");
    }
}
