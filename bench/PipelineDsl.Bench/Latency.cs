using System.Diagnostics;
using System.Globalization;
using PipelineDsl;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Bench;

public sealed record Tick(long Key, long Value);
public sealed record TickCount(long Key, long Value, long Count);

/// <summary>The latency benchmark's job: a running count per key over a steady rate source, every record's count written out.</summary>
[Pipeline("bench-latency")]
public static partial class LatencyCount
{
    public const long Keys = 10_000;

    [Source("in")]
    public static partial Source<RateRecord> In();

    [Map("key", From = "in")]
    public static Tick Key(RateRecord r) => new(r.Value % Keys, r.Value);

    [UpdateState("count", From = "key", Key = nameof(Tick.Key))]
    public static TickCount Count(long key, Tick t, KeyedState<long> state)
    {
        long n = state.Value + 1;
        state.Update(n);
        return new TickCount(key, t.Value, n);
    }

    [Sink("out", From = "count")]
    public static partial Sink<TickCount> Out();
}

/// <summary>
/// End-to-end latency at a steady input rate: the time from the instant a record becomes readable in the
/// source (the <see cref="RateSource"/> makes record <c>v</c> readable <c>v / rate</c> seconds after it
/// starts) until the file holding its result is durable (fsynced and renamed by the <see cref="FileSink{T}"/>),
/// with exactly-once checkpoints on a real directory (offsets fsynced every batch, a snapshot every 10
/// batches). Reported per input rate: p50, p99, p99.9 and max, and whether the run kept up.
/// </summary>
public static class LatencyBenchmark
{
    public static void Run(IReadOnlyList<long> rates, TimeSpan duration, TimeSpan interval, int parallelism, string temp)
    {
        Console.WriteLine("## End-to-end latency (record readable in the source -> its result durable in the sink)");
        Console.WriteLine();
        Console.WriteLine($"Batch interval {interval.TotalMilliseconds:F0} ms; exactly-once checkpoints in a directory (offsets fsynced every batch, snapshot every 10 batches); "
                          + $"{LatencyCount.Keys:N0} keys; {duration.TotalSeconds:F0} s per rate, the first second left out; parallelism {parallelism}; load average before: {Load()}.");
        Console.WriteLine();
        var floor = DurableWriteFloor(temp);
        Console.WriteLine($"Floor measured in this run: one fsynced write-and-rename of a 64 KiB file takes p50 {floor.P50:F2} ms, p99 {floor.P99:F2} ms "
                          + "(a batch makes at least two such writes durable before its output counts: the offsets, then the output file).");
        Console.WriteLine();
        Console.WriteLine("| input rate (records/s) | records measured | p50 ms | p99 ms | p99.9 ms | max ms | batches | mean batch ms | kept up (median latency, first fifth -> last fifth) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (long rate in rates) RunOne(rate, duration, interval, parallelism, temp);
        Console.WriteLine();
    }

    private static void RunOne(long rate, TimeSpan duration, TimeSpan interval, int parallelism, string temp)
    {
        string root = Path.Combine(temp, "latency-" + rate.ToString(CultureInfo.InvariantCulture));
        long expected = (long)(rate * duration.TotalSeconds);
        var sink = new TimingSink(new FileSink<TickCount>(Path.Combine(root, "out"), t => $"{t.Key},{t.Value},{t.Count}"), expected + rate);
        using var stop = new CancellationTokenSource();
        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = Path.Combine(root, "checkpoint"),
            CheckpointInterval = 10,
            BatchInterval = interval,
            Parallelism = parallelism,
        };

        // The source's clock starts in its constructor: record v is readable at start + v / rate.
        long startTimestamp = Stopwatch.GetTimestamp();
        var source = new RateSource(new RateSourceOptions { RecordsPerSecond = rate, Partitions = 4 });
        sink.Start(startTimestamp, rate);
        long batches = 0;
        double batchMs = 0;
        var runner = new PipelineRunner(LatencyCount.Definition, options).BindSource(LatencyCount.In(), source).BindSink(LatencyCount.Out(), sink);
        runner.BatchCompleted += progress =>
        {
            batches++;
            batchMs += progress.Duration.TotalMilliseconds;
        };
        var run = Task.Run(() => runner.RunAsync(stop.Token));
        Thread.Sleep(duration);
        stop.Cancel();
        run.GetAwaiter().GetResult();

        // Leave out the first second (JIT, first snapshot) and anything past the end of the timed window.
        var latencies = sink.Latencies(from: rate, to: expected);
        // Kept up: latency did not grow during the run (the median of the last fifth of the records is within
        // one batch interval of the first fifth's); a rate the job cannot sustain shows a growing backlog.
        static double Median(double[] values)
        {
            // Array.Sort, not LINQ's ElementAt over Order(): its quickselect degrades to quadratic time on the
            // many equal latencies of one batch.
            Array.Sort(values);
            return values.Length == 0 ? double.NaN : values[values.Length / 2];
        }

        int fifth = latencies.Length / 5;
        double early = Median(latencies[..fifth]), late = Median(latencies[^fifth..]);
        Array.Sort(latencies);
        double P(double q) => latencies.Length == 0 ? double.NaN : latencies[Math.Min(latencies.Length - 1, (int)(q * latencies.Length))];
        bool keptUp = sink.Delivered >= expected * 0.98 && late <= early + interval.TotalMilliseconds;
        Console.WriteLine($"| {rate:N0} | {latencies.Length:N0} | {P(0.50):F1} | {P(0.99):F1} | {P(0.999):F1} | {(latencies.Length == 0 ? double.NaN : latencies[^1]):F1} | {batches:N0} | {batchMs / Math.Max(1, batches):F1} | {(keptUp ? "yes" : "no")} ({early:F0} -> {late:F0} ms) |");
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Fsynced write-and-rename of a 64 KiB file, 200 times: what the disk alone costs a batch.</summary>
    private static (double P50, double P99) DurableWriteFloor(string temp)
    {
        string dir = Path.Combine(temp, "floor");
        Directory.CreateDirectory(dir);
        var bytes = new byte[64 * 1024];
        var times = new double[200];
        for (int i = 0; i < times.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            string tmp = Path.Combine(dir, ".f.tmp"), path = Path.Combine(dir, "f-" + i.ToString(CultureInfo.InvariantCulture));
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(tmp, path, overwrite: true);
            times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }

        Directory.Delete(dir, recursive: true);
        Array.Sort(times);
        return (times[times.Length / 2], times[(int)(times.Length * 0.99)]);
    }

    private static string Load()
    {
        try
        {
            return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    /// <summary>Writes through a real file sink, then notes for each record the time its batch became durable.</summary>
    private sealed class TimingSink : ISinkConnector<TickCount>
    {
        private readonly FileSink<TickCount> _inner;
        private readonly double[] _latencyMs;
        private long _start;
        private double _msPerRecord;

        public TimingSink(FileSink<TickCount> inner, long capacity)
        {
            _inner = inner;
            _latencyMs = new double[capacity];
            Array.Fill(_latencyMs, double.NaN);
        }

        public long Delivered { get; private set; }

        public void Start(long startTimestamp, long rate)
        {
            _start = startTimestamp;
            _msPerRecord = 1000.0 / rate;
        }

        public async Task WriteBatchAsync(long batchId, IReadOnlyList<TickCount> records, CancellationToken cancellationToken)
        {
            await _inner.WriteBatchAsync(batchId, records, cancellationToken).ConfigureAwait(false);
            double now = Stopwatch.GetElapsedTime(_start).TotalMilliseconds;
            foreach (var record in records)
            {
                if (record.Value < _latencyMs.Length) _latencyMs[record.Value] = now - record.Value * _msPerRecord;
            }

            Delivered += records.Count;
        }

        public double[] Latencies(long from, long to) =>
            _latencyMs.AsSpan((int)Math.Min(from, _latencyMs.Length), (int)Math.Max(0, Math.Min(to, _latencyMs.Length) - from)).ToArray().Where(l => !double.IsNaN(l)).ToArray();
    }
}
