using System.Diagnostics;
using System.Globalization;
using PipelineDsl.Sources;

namespace PipelineDsl.Bench;

/// <summary>
/// The state backends side by side, in one process: the bytes each snapshot writes when 1%, 10% and 100% of the keys
/// changed since the one before (in-memory writes all state every time; RocksDB uploads new table files), and how long a
/// restart takes to have the state back (RocksDB from its local copy and from the checkpoint store alone). And, with
/// <c>--large-state</c>, a keyed count over many keys on one backend, for its peak memory.
/// </summary>
internal static class StateBackendBenchmark
{
    private static readonly double[] Fractions = { 0.01, 0.10, 1.00 };
    private const int SnapshotsPerFraction = 3;

    public static void Run(int keys, string temp)
    {
        Console.WriteLine("# PipelineDsl state backends: incremental snapshots and restart");
        Console.WriteLine();
        Console.WriteLine($"{keys:N0} keys of keyed-count state (a string key, a long count); {Environment.ProcessorCount} cores; .NET {Environment.Version}.");
        Console.WriteLine($"Each fraction: {SnapshotsPerFraction} batches that each touch that fraction of the keys, a snapshot after every batch.");
        Console.WriteLine();

        var results = new Dictionary<string, Dictionary<double, double>>();
        var restarts = new Dictionary<string, TimeSpan>();
        foreach (var backend in new[] { "in-memory", "rocksdb" })
        {
            string work = Path.Combine(temp, backend);
            var source = new SyntheticClicks(keys);
            StateBackend Backend() => backend == "rocksdb" ? new RocksDbStateBackend(Path.Combine(work, "rocksdb")) : StateBackend.InMemory;

            // Load every key once, one snapshot at the end.
            source.End = keys;
            RunKeyed(work, source, Backend(), perBatch: Math.Max(1, keys / 4), interval: int.MaxValue);

            var bytes = results[backend] = new Dictionary<double, double>();
            foreach (var fraction in Fractions)
            {
                long perBatch = Math.Max(1, (long)(keys * fraction));
                source.End += perBatch * SnapshotsPerFraction;
                var progress = RunKeyed(work, source, Backend(), perBatch, interval: 1).Progress;
                var written = progress.Select(p => p.StateOperators.Single().SnapshotBytes).Where(b => b is not null).Select(b => (double)b!.Value).ToList();
                bytes[fraction] = written.Average();
            }

            // A restart with nothing new to do: the time until the state is back.
            restarts[backend + " (local copy)"] = RunKeyed(work, source, Backend(), 1, int.MaxValue).Summary.RecoveryTime;
            if (backend == "rocksdb")
            {
                Directory.Delete(Path.Combine(work, "rocksdb"), recursive: true);
                restarts[backend + " (checkpoint store only)"] = RunKeyed(work, source, Backend(), 1, int.MaxValue).Summary.RecoveryTime;
            }
        }

        Console.WriteLine("| keys touched per snapshot | in-memory: bytes per snapshot | RocksDB: bytes per snapshot | RocksDB / in-memory | RocksDB bytes per touched key |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var fraction in Fractions)
        {
            double memory = results["in-memory"][fraction], rocks = results["rocksdb"][fraction];
            Console.WriteLine($"| {fraction:P0} | {memory:N0} | {rocks:N0} | {rocks / memory:F3} | {rocks / (keys * fraction):F1} |");
        }

        Console.WriteLine();
        Console.WriteLine("| restart, state back after | seconds | / in-memory |");
        Console.WriteLine("|---|---|---|");
        var baseline = restarts["in-memory (local copy)"];
        foreach (var (name, time) in restarts)
            Console.WriteLine($"| {name.Replace("in-memory (local copy)", "in-memory (snapshot file)", StringComparison.Ordinal)} | {time.TotalSeconds:F2} | {time / baseline:F2} |");
    }

    /// <summary>
    /// A keyed count over <paramref name="keys"/> keys on one backend; prints the peak resident memory (VmHWM), the managed
    /// heap, and the time a restart takes to have the state back.
    /// </summary>
    public static void RunLarge(long keys, string backendName, string temp, long blockCacheBytes)
    {
        var source = new SyntheticClicks(keys) { End = keys };
        StateBackend backend = backendName == "rocksdb"
            ? new RocksDbStateBackend(Path.Combine(temp, "rocksdb")) { BlockCacheBytes = blockCacheBytes, WriteBufferBytes = Math.Min(64L << 20, Math.Max(1L << 20, blockCacheBytes / 2)) }
            : StateBackend.InMemory;
        var watch = Stopwatch.StartNew();
        var run = RunKeyed(temp, source, backend, perBatch: 100_000, interval: 50);
        watch.Stop();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        Console.WriteLine($"backend {backendName}: {keys:N0} keys in state ({run.Summary.StateKeys:N0}), {run.Summary.BatchesRun} batches in {watch.Elapsed.TotalSeconds:F1} s " +
                          $"({keys / watch.Elapsed.TotalSeconds:N0} keys/s)");
        Console.WriteLine($"peak-rss-bytes {process.PeakWorkingSet64}");
        Console.WriteLine($"managed-heap-bytes {GC.GetTotalMemory(forceFullCollection: true)}");
        Console.WriteLine($"checkpoint-bytes {DirectorySize(Path.Combine(temp, "checkpoint"))}");

        // A restart with nothing new to do: the time until the state is back, from the local copy and (RocksDB) from the store alone.
        Console.WriteLine($"restart-seconds {RunKeyed(temp, source, backend, 1, int.MaxValue).Summary.RecoveryTime.TotalSeconds:F2}");
        if (backend is RocksDbStateBackend rocks)
        {
            Directory.Delete(rocks.Directory, recursive: true);
            Console.WriteLine($"restart-seconds-from-store {RunKeyed(temp, source, backend, 1, int.MaxValue).Summary.RecoveryTime.TotalSeconds:F2}");
        }
    }

    private static long DirectorySize(string path) => Directory.Exists(path) ? Directory.GetFiles(path, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) : 0;

    private sealed record KeyedRun(RunSummary Summary, List<BatchProgress> Progress);

    private static KeyedRun RunKeyed(string work, SyntheticClicks source, StateBackend backend, long perBatch, int interval)
    {
        var progress = new List<BatchProgress>();
        var runner = new PipelineRunner(KeyedCount.Definition, new PipelineRunnerOptions
        {
            CheckpointDirectory = Path.Combine(work, "checkpoint"),
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = perBatch,
            CheckpointInterval = interval,
            RetainedSnapshots = 2,
            StateBackend = backend,
        }).BindSource(KeyedCount.In(), source).BindSink(KeyedCount.Out(), new CountingSink<UserCount>());
        runner.BatchCompleted += progress.Add;
        var summary = runner.RunAsync().GetAwaiter().GetResult();
        return new KeyedRun(summary, progress);
    }

    /// <summary>
    /// Clicks made from their position, so that any number of them costs no memory: positions below the key count name
    /// each key once (the load), later positions a pseudo-random key.
    /// </summary>
    private sealed class SyntheticClicks(long keys) : ISourceConnector<Click>
    {
        public long End { get; set; }

        public string Description => "synthetic clicks";

        public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<string>>(new[] { "0" });

        public Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) => Task.FromResult(0L);

        public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken) => Task.FromResult(End);

        public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
            Task.FromResult(Math.Min(available, from + maxRecords));

        public Task ReadAsync(string partition, long from, long to, ISourceOutput<Click> output, CancellationToken cancellationToken)
        {
            for (long p = from; p < to; p++)
            {
                long key = p < keys ? p : (long)(Mix((ulong)p) % (ulong)keys);
                output.Emit(p, new Click("user-" + key.ToString("D9", CultureInfo.InvariantCulture), p));
            }

            return Task.CompletedTask;
        }

        private static ulong Mix(ulong x)
        {
            x ^= x >> 33;
            x *= 0xff51afd7ed558ccdUL;
            x ^= x >> 33;
            x *= 0xc4ceb9fe1a85ec53UL;
            return x ^ (x >> 33);
        }
    }
}
