using System.Diagnostics;
using PipelineDsl.Sources;

/// <summary>
/// Acknowledged ingestion into a receiver's write-ahead log: many concurrent senders, each awaiting its acknowledgement
/// before sending the next record, with the log durable (fsync, group commit) against the same log without fsync,
/// interleaved round by round. Reports throughput, their ratio, and acknowledgement latency percentiles.
/// </summary>
internal static class IngestBenchmark
{
    public static void Run(int records, int senders, int repeat, string temp)
    {
        var payload = new byte[100];
        new Random(1).NextBytes(payload);
        var durable = new List<(double Rate, double P50, double P99)>();
        var volatileOnly = new List<(double Rate, double P50, double P99)>();
        for (int round = -1; round < repeat; round++) // round -1 warms up
        {
            foreach (bool isDurable in new[] { false, true })
            {
                var result = Once(records, senders, payload, isDurable, Path.Combine(temp, Guid.NewGuid().ToString("N")));
                if (round >= 0) (isDurable ? durable : volatileOnly).Add(result);
            }
        }

        static double Median(IEnumerable<double> v)
        {
            var s = v.Order().ToArray();
            return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        }

        var ratios = durable.Zip(volatileOnly, (d, v) => d.Rate / v.Rate).ToList();
        Console.WriteLine($"Ingestion of {records:N0} records of 100 bytes by {senders} concurrent senders, each awaiting its acknowledgement, {repeat} rounds, load average before: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"| log | records/s (median) | best | ack latency p50 (ms, median) | p99 |");
        Console.WriteLine($"|---|---:|---:|---:|---:|");
        Console.WriteLine($"| durable (fsync per group) | {Median(durable.Select(d => d.Rate)):N0} | {durable.Max(d => d.Rate):N0} | {Median(durable.Select(d => d.P50)):F2} | {Median(durable.Select(d => d.P99)):F2} |");
        Console.WriteLine($"| without fsync | {Median(volatileOnly.Select(d => d.Rate)):N0} | {volatileOnly.Max(d => d.Rate):N0} | {Median(volatileOnly.Select(d => d.P50)):F2} | {Median(volatileOnly.Select(d => d.P99)):F2} |");
        Console.WriteLine($"Durable / without fsync: {Median(ratios):F3} of the throughput (median of {repeat} rounds; best {ratios.Max():F3}).");
    }

    private static (double Rate, double P50, double P99) Once(int records, int senders, byte[] payload, bool durable, string directory)
    {
        using var receiver = new ChannelReceiverSource<byte[]>(directory, p => p, b => b.ToArray(), new ReceiverOptions { Durable = durable, MaxBacklogRecords = long.MaxValue / 2 });
        var latencies = new double[records];
        int next = -1;
        var watch = Stopwatch.StartNew();
        Task.WaitAll(Enumerable.Range(0, senders).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < records)
            {
                long sent = Stopwatch.GetTimestamp();
                await receiver.WriteAsync(payload);
                latencies[i] = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            }
        })).ToArray());
        double seconds = watch.Elapsed.TotalSeconds;
        receiver.Dispose();
        Directory.Delete(directory, recursive: true);
        Array.Sort(latencies);
        return (records / seconds, latencies[records / 2], latencies[(int)(records * 0.99)]);
    }
}
