using System.Diagnostics;
using System.Net;
using System.Text;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The HTTP receiver under SIGKILL: a client posts a million clicks in requests with idempotency keys and retries
/// whatever got no 200, while the service is killed and restarted at random; every acknowledged click must be counted
/// exactly once in the output, and nothing that was never sent may appear.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public class ReceiverKillTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task Every_acknowledged_click_is_counted_exactly_once_across_twenty_kill_9s()
    {
        int kills = int.TryParse(Environment.GetEnvironmentVariable("PIPELINEDSL_RECEIVER_KILLS"), out int k) ? k : 20;
        const int records = 1_000_000, perRequest = 2_000, users = 500;
        var random = TestRandom.Create(20261201, log, "kill instants");
        using var dir = new TempDir();
        string[] args =
        {
            "--receive", dir.Sub("wal"), "--checkpoint", dir.Sub("checkpoint"), "--output", dir.Sub("output"),
            "--Pipeline:BatchInterval=00:00:00.100", "--Pipeline:MaxRecordsPerPartition=25",
        };

        // The clicks: user i % 500, every tenth a bot (filtered out by the pipeline).
        string Line(int i) => $"u{i % users},/p{i % 7},{i},{(i % 10 == 0 ? 1 : 0)}";
        var expected = Enumerable.Range(0, records).Where(i => i % 10 != 0).GroupBy(i => "u" + (i % users)).ToDictionary(g => g.Key, g => (long)g.Count());
        var requests = Enumerable.Range(0, records / perRequest)
            .Select(r => string.Join("\n", Enumerable.Range(r * perRequest, perRequest).Select(Line)) + "\n").ToArray();

        var (job, url) = await SampleProcess.StartServeAsync(args, Long);
        var current = (Job: job, Url: url);
        var gate = new object();
        // Whatever fails below, the service running at that moment is stopped (a failed test must not leave it running).
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
            int acknowledged = 0, retries = 0, duplicates = 0;

            async Task SendAll(int lane, int lanes)
            {
                for (int r = lane; r < requests.Length; r += lanes)
                {
                    while (true)
                    {
                        string target;
                        lock (gate) target = current.Url;
                        try
                        {
                            using var content = new StringContent(requests[r], Encoding.UTF8, "text/plain");
                            using var message = new HttpRequestMessage(HttpMethod.Post, target + "/ingest") { Content = content };
                            message.Headers.Add("Idempotency-Key", "request-" + r);
                            using var response = await http.SendAsync(message);
                            if (response.StatusCode == HttpStatusCode.OK)
                            {
                                if ((await response.Content.ReadAsStringAsync()).Contains("\"duplicate\":true")) Interlocked.Increment(ref duplicates);
                                Interlocked.Increment(ref acknowledged);
                                break;
                            }
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                        {
                            // Killed mid-request, or not listening yet: send it again.
                        }

                        Interlocked.Increment(ref retries);
                        await Task.Delay(50);
                    }
                }
            }

            // Kills follow the client's progress: spread over the requests, at a random instant within each share.
            async Task KillAll()
            {
                for (int kill = 0; kill < kills; kill++)
                {
                    int due = (int)((long)requests.Length * (kill + 1) / (kills + 1));
                    await Eventually.UntilAsync(() => Volatile.Read(ref acknowledged) >= due, Long, $"{due} requests acknowledged");
                    await Task.Delay(random.Next(0, 200));
                    ChildProcess dead;
                    lock (gate) dead = current.Job;
                    dead.KillHard();
                    dead.WaitForExit(Long);
                    dead.Dispose();
                    var (next, nextUrl) = await SampleProcess.StartServeAsync(args, Long);
                    lock (gate) current = (next, nextUrl);
                }
            }

            var watch = Stopwatch.StartNew();
            var killing = KillAll();
            await Task.WhenAll(Enumerable.Range(0, 4).Select(lane => SendAll(lane, 4)));
            await killing;
            log.WriteLine($"{requests.Length} requests acknowledged in {watch.Elapsed.TotalSeconds:F1} s, {kills} kills, {retries} retries, {duplicates} answered as duplicates");

            Dictionary<string, long> Totals() => UserCounts.FromOutput(dir.Sub("output"));

            await Eventually.UntilAsync(() => Totals().Values.Sum() >= expected.Values.Sum(), Long, "every acknowledged click counted");
            await Task.Delay(1000); // a duplicate would show in a later batch
            var totals = Totals();
            lock (gate) current.Job.SendSigterm();
            lock (gate) Assert.True(current.Job.WaitForExit(Long) == 0, current.Job.Output);
            current.Job.Dispose();

            Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), totals.OrderBy(p => p.Key, StringComparer.Ordinal));
            Assert.True(retries > 0, "no request was ever retried: the kills did not interrupt the client");
        }
        finally
        {
            lock (gate) current.Job.Dispose();
        }
    }

    [Fact]
    public async Task The_ingest_endpoint_refuses_bad_requests_answers_a_retry_as_a_duplicate_and_sets_bad_lines_aside()
    {
        using var dir = new TempDir();
        var (job, url) = await SampleProcess.StartServeAsync(new[] { "--receive", dir.Sub("wal"), "--checkpoint", dir.Sub("checkpoint"), "--output", dir.Sub("output") }, Long);
        using var _ = job;
        using var http = new HttpClient();
        async Task<(HttpStatusCode Status, string Body)> Post(string body, string? key)
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, url + "/ingest") { Content = new StringContent(body, Encoding.UTF8, "text/plain") };
            if (key is not null) message.Headers.Add("Idempotency-Key", key);
            using var response = await http.SendAsync(message);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var empty = await Post("\n\n", "k");
        Assert.Equal(HttpStatusCode.BadRequest, empty.Status);
        Assert.Contains("no lines", empty.Body);
        var longKey = await Post("u1,/a,1,0\n", new string('k', 201));
        Assert.Equal(HttpStatusCode.BadRequest, longKey.Status);
        Assert.Contains("Idempotency-Key", longKey.Body);

        const string body = "u1,/a,1,0\nnot a click\r\nu2,/b,2,0\nu1,/c,3,0\n";
        var first = await Post(body, "batch-1");
        Assert.Equal(HttpStatusCode.OK, first.Status);
        Assert.Contains("\"records\":4", first.Body);
        Assert.Contains("\"duplicate\":false", first.Body);
        var retry = await Post(body, "batch-1");
        Assert.Equal(HttpStatusCode.OK, retry.Status);
        Assert.Contains("\"duplicate\":true", retry.Body);

        // The good clicks are counted once; the bad line is set aside with its request's position, and the service runs on.
        await Eventually.UntilAsync(() => Directory.Exists(dir.Sub("output")) && Directory.GetFiles(dir.Sub("output"), "part-*.txt").Length > 0, Long, "output");
        var lines = Directory.GetFiles(dir.Sub("output"), "part-*.txt").Order(StringComparer.Ordinal).SelectMany(File.ReadLines).ToList();
        Assert.Equal(new[] { "u1,1,1", "u2,1,2", "u1,2,3" }, lines);
        // Dead letters are written after the sinks, before the commit: the output can appear a moment before them.
        string deadLetterDirectory = Path.Combine(dir.Sub("checkpoint"), "dead-letter");
        // Files starting with '.' are the temporary files of a write in progress.
        string[] DeadLetterFiles() => Directory.Exists(deadLetterDirectory)
            ? Directory.GetFiles(deadLetterDirectory).Where(f => !Path.GetFileName(f).StartsWith('.')).ToArray()
            : Array.Empty<string>();
        await Eventually.UntilAsync(() => DeadLetterFiles().Length > 0, Long, "dead letters");
        var deadLetters = DeadLetterFiles().SelectMany(File.ReadLines).ToList();
        Assert.Contains(deadLetters, l => l.Contains("not a click"));
        Assert.Equal(HttpStatusCode.OK, (await Post("u3,/d,4,0\n", "batch-2")).Status);
        job.SendSigterm();
        Assert.True(job.WaitForExit(Long) == 0, job.Output);
    }
}
