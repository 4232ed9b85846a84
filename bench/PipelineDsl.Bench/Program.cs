using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using PipelineDsl;
using PipelineDsl.Bench;
using PipelineDsl.Checkpointing;
using PipelineDsl.Sources;

// Runtime benchmark: records/s of map+filter and keyed count through the PipelineRunner (checkpointing
// every batch, every 10 batches, off) against a plain C# loop doing the same work, interleaved round by round
// in one process on the same in-memory data (best and median ratio, per-core rates from CPU time); the keyed
// count's speedup from parallelism 1 to the configured parallelism; then the time a restart with 1,000,000
// keys of state takes to resume.
//   dotnet run -c Release --project bench/PipelineDsl.Bench [-- --records N --keys K --repeat R]
var recordsOption = new Option<long>("--records") { Description = "Records per run", DefaultValueFactory = _ => 4_000_000 }.Positive();
var keysOption = new Option<int>("--keys") { Description = "Distinct keys", DefaultValueFactory = _ => 100_000 }.Positive();
var repeatOption = new Option<int>("--repeat") { Description = "Interleaved rounds (plain loop, then pipeline) per scenario, after one warm-up round", DefaultValueFactory = _ => 5 }.Positive();
var parallelismOption = new Option<int>("--parallelism") { Description = "Pipeline parallelism (default: the number of cores)", DefaultValueFactory = _ => Environment.ProcessorCount }.Positive();
var profileOption = new Option<string?>("--profile") { Description = "Run one scenario repeatedly for a profiler, checkpointing off: keyed or map-filter; keyed-10: keyed, checkpoint every 10 batches in a directory" };
profileOption.AcceptOnlyFromAmong("keyed", "keyed-10", "map-filter");
var latencyOption = new Option<bool>("--latency") { Description = "Measure end-to-end latency at steady input rates (see --rates) instead of throughput" };
var ratesOption = new Option<long[]>("--rates") { Description = "Input rates (records/s) for --latency", DefaultValueFactory = _ => new long[] { 50_000, 100_000, 200_000 }, AllowMultipleArgumentsPerToken = true };
var secondsOption = new Option<int>("--seconds") { Description = "Seconds per rate for --latency", DefaultValueFactory = _ => 15 }.Positive();
var azureOption = new Option<bool>("--azure-store") { Description = "Compare the keyed count with its checkpoint on Azure Blob Storage (Azurite on loopback) against a local directory, interleaved" };
var ingestOption = new Option<bool>("--ingest") { Description = "Measure acknowledged ingestion into a receiver's write-ahead log (1,000,000 records of 100 bytes, 1,024 concurrent senders; PIPELINEDSL_INGEST_SENDERS to change): durable (fsync, group commit) against without fsync, interleaved" };
var metricsOption = new Option<bool>("--metrics") { Description = "Measure the cost of a listener on the PipelineDsl meter: the keyed count with one attached against without, interleaved" };
var hostedOption = new Option<bool>("--hosted") { Description = "Measure the cost of running as a service: the keyed count under the .NET host with the Prometheus exporter and the UI's API polled every second, against the plain runner, interleaved" };
var takeoverOption = new Option<bool>("--takeover") { Description = "Measure takeover time with hot standbys (replicas of the main job on Azurite; SIGKILL of the active one)" };
var stateOption = new Option<bool>("--state") { Description = "Compare the state backends: bytes per snapshot when 1%, 10%, 100% of the keys changed (in-memory against RocksDB's incremental snapshots), and restart time (see --state-keys)" };
var stateKeysOption = new Option<int>("--state-keys") { Description = "Keys of state for --state", DefaultValueFactory = _ => 1_000_000 }.Positive();
var largeStateOption = new Option<long>("--large-state") { Description = "Run a keyed count over this many keys on one backend (--backend) and print its peak resident memory (e.g. 100000000 on RocksDB)" }.Positive();
var backendOption = new Option<string>("--backend") { Description = "The state backend of --large-state", DefaultValueFactory = _ => "rocksdb" };
backendOption.AcceptOnlyFromAmong("rocksdb", "in-memory");
var blockCacheOption = new Option<int>("--block-cache-mb") { Description = "RocksDB's block cache for --large-state, in MiB (its write buffer is half of it, at most 64)", DefaultValueFactory = _ => 256 }.Positive();
var intervalOption = new Option<int>("--interval-ms") { Description = "Batch interval in milliseconds for --latency", DefaultValueFactory = _ => 10 }.Positive();
var root = new RootCommand("Runtime benchmark: map+filter and keyed count through the runner against a plain C# loop, in one run; then restart time.")
{
    recordsOption, keysOption, repeatOption, parallelismOption, profileOption, latencyOption, ratesOption, secondsOption, intervalOption, azureOption, takeoverOption, metricsOption, hostedOption, ingestOption,
    stateOption, stateKeysOption, largeStateOption, backendOption, blockCacheOption,
};
if (CommandLineProgram.Parse(root, args, out var parsed) is int exit) return exit;
long records = parsed.GetValue(recordsOption);
int keys = parsed.GetValue(keysOption);
int repeat = parsed.GetValue(repeatOption);
int parallelism = parsed.GetValue(parallelismOption);
if (parsed.GetValue(stateOption) || parsed.GetValue(largeStateOption) > 0)
{
    string stateTemp = Path.Combine(Path.GetTempPath(), "pdsl-state-" + Guid.NewGuid().ToString("N"));
    try
    {
        if (parsed.GetValue(largeStateOption) is > 0 and var large) StateBackendBenchmark.RunLarge(large, parsed.GetValue(backendOption)!, stateTemp, (long)parsed.GetValue(blockCacheOption) << 20);
        else StateBackendBenchmark.Run(parsed.GetValue(stateKeysOption), stateTemp);
    }
    finally
    {
        if (Directory.Exists(stateTemp)) Directory.Delete(stateTemp, recursive: true);
    }

    return 0;
}

if (parsed.GetValue(latencyOption))
{
    string latencyTemp = Path.Combine(Path.GetTempPath(), "pdsl-latency-" + Guid.NewGuid().ToString("N"));
    LatencyBenchmark.Run(parsed.GetValue(ratesOption)!, TimeSpan.FromSeconds(parsed.GetValue(secondsOption)), TimeSpan.FromMilliseconds(parsed.GetValue(intervalOption)), parallelism, latencyTemp);
    Directory.Delete(latencyTemp, recursive: true);
    return 0;
}

const int partitions = 4;
const int batches = 20;
long perPartitionPerBatch = records / partitions / batches;

Console.WriteLine($"# PipelineDsl runtime benchmark");
Console.WriteLine();
Console.WriteLine($"{records:N0} records, {keys:N0} keys, {partitions} partitions, {batches} batches of {records / batches:N0}; "
                  + $"{Environment.ProcessorCount} cores; .NET {Environment.Version}; pipeline parallelism {parallelism}.");
Console.WriteLine();

var data = new Click[records];
var random = new Random(42);
var users = Enumerable.Range(0, keys).Select(i => "user-" + i.ToString("D7", CultureInfo.InvariantCulture)).ToArray();
for (long i = 0; i < records; i++) data[i] = new Click(users[random.Next(keys)], random.Next(1_000_000));

// One source per run would add 32 MB of garbage per run that the plain loop does not have; a memory
// source is replayable, so one instance serves every run.
MemorySource<Click>? shared = null;
MemorySource<Click> Source() => shared ??= BuildSource();

MemorySource<Click> BuildSource()
{
    var source = new MemorySource<Click>(partitions);
    for (int p = 0; p < partitions; p++)
    {
        var slice = new List<Click>((int)(records / partitions + 1));
        for (long i = p; i < records; i += partitions) slice.Add(data[i]);
        source.Add(p, slice);
    }

    return source;
}

string temp = Path.Combine(Path.GetTempPath(), "pdsl-bench-" + Guid.NewGuid().ToString("N"));
TimeSpan RunPipeline(bool keyed, int? checkpointEvery, ICheckpointStore? store = null)
{
    var source = Source();
    var options = new PipelineRunnerOptions
    {
        Trigger = TriggerMode.AvailableNow,
        MaxRecordsPerPartition = perPartitionPerBatch,
        CheckpointInterval = checkpointEvery ?? int.MaxValue,
        Parallelism = parallelism,
    };
    // "off": an in-memory store and no snapshots; otherwise a real directory with fsync.
    if (store is not null) options.CheckpointStore = store;
    else if (checkpointEvery is null) options.CheckpointStore = new InMemoryCheckpointStore();
    else options.CheckpointDirectory = Path.Combine(temp, Guid.NewGuid().ToString("N"));

    var watch = Stopwatch.StartNew();
    if (keyed)
    {
        var sink = new CountingSink<UserCount>();
        new PipelineRunner(KeyedCount.Definition, options).BindSource(KeyedCount.In(), source).BindSink(KeyedCount.Out(), sink).RunAsync().GetAwaiter().GetResult();
        if (sink.Count != records) throw new InvalidOperationException($"keyed count emitted {sink.Count} records");
    }
    else
    {
        var sink = new CountingSink<Click>();
        new PipelineRunner(MapFilter.Definition, options).BindSource(MapFilter.In(), source).BindSink(MapFilter.Out(), sink).RunAsync().GetAwaiter().GetResult();
    }

    return watch.Elapsed;
}

// The plain loops: the same per-record work and the same outputs, one batch at a time, no framework.
TimeSpan PlainMapFilter()
{
    var watch = Stopwatch.StartNew();
    var output = new List<Click>();
    long emitted = 0;
    long batch = records / batches;
    for (long start = 0; start < records; start += batch)
    {
        output.Clear();
        long end = Math.Min(records, start + batch);
        for (long i = start; i < end; i++)
        {
            var c = Work.Scale(data[i]);
            if (Work.Keep(c)) output.Add(c);
        }

        emitted += output.Count;
    }

    GC.KeepAlive(emitted);
    return watch.Elapsed;
}

TimeSpan PlainKeyedCount()
{
    var watch = Stopwatch.StartNew();
    var counts = new Dictionary<string, long>();
    var output = new List<UserCount>();
    long batch = records / batches;
    for (long start = 0; start < records; start += batch)
    {
        output.Clear();
        long end = Math.Min(records, start + batch);
        for (long i = start; i < end; i++)
        {
            var c = data[i];
            ref long n = ref CollectionsMarshal.GetValueRefOrAddDefault(counts, c.User, out _);
            n++;
            output.Add(new UserCount(c.User, n));
        }
    }

    return watch.Elapsed;
}

if (parsed.GetValue(ingestOption))
{
    string ingestTemp = Path.Combine(Path.GetTempPath(), "pdsl-ingest-" + Guid.NewGuid().ToString("N"));
    IngestBenchmark.Run(1_000_000, int.TryParse(Environment.GetEnvironmentVariable("PIPELINEDSL_INGEST_SENDERS"), out int senders) ? senders : 1024, repeat, ingestTemp);
    Directory.Delete(ingestTemp, recursive: true);
    return 0;
}

if (parsed.GetValue(metricsOption))
{
    // The keyed count (checkpoint every 10 batches) without a listener, then with one on the PipelineDsl meter that
    // takes every measurement (as an exporter does), interleaved round by round.
    long taken = 0;
    TimeSpan Listened()
    {
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "PipelineDsl") l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => Interlocked.Increment(ref taken));
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Increment(ref taken));
        listener.Start();
        return RunPipeline(true, 10);
    }

    var withListener = Interleave(() => RunPipeline(true, 10), Listened);
    Console.WriteLine($"Keyed count, checkpoint every 10 batches, load average before: {LoadAverage()}: with a listener on the PipelineDsl meter / without: "
                      + $"{Median(withListener.Ratios):F3} of the throughput (median of {repeat} rounds; best {withListener.Ratios.Max():F3}); {taken:N0} measurements taken.");
    return 0;
}

if (parsed.GetValue(hostedOption))
{
    // The keyed count (checkpoint every 10 batches) run plainly, then as a hosted service that is scraped and watched.
    var hosted = Interleave(() => RunPipeline(true, 10),
        () => HostedRun.Run(Source(), Path.Combine(temp, Guid.NewGuid().ToString("N")), perPartitionPerBatch, parallelism, records));
    Console.WriteLine($"Keyed count, checkpoint every 10 batches, load average before: {LoadAverage()}: as a hosted service (Prometheus exporter scraped and the UI's API polled every second) / plain runner: "
                      + $"{Median(hosted.Ratios):F3} of the throughput (median of {repeat} rounds; best {hosted.Ratios.Max():F3}); plain {records / hosted.Plain.Min(m => m.Wall):N0} records/s, hosted {records / hosted.Pipeline.Min(m => m.Wall):N0} records/s (best).");
    return 0;
}

if (parsed.GetValue(takeoverOption))
{
    string takeoverTemp = Path.Combine(Path.GetTempPath(), "pdsl-takeover-" + Guid.NewGuid().ToString("N"));
    TakeoverBenchmark.Run(repeat, new[] { 1000, 2000, 5000 }, takeoverTemp);
    Directory.Delete(takeoverTemp, recursive: true);
    return 0;
}

if (parsed.GetValue(azureOption))
{
    // The keyed count with its checkpoint in Azure Blob Storage (Azurite on this machine, over loopback HTTP) against
    // a local directory, interleaved round by round; each run a new checkpoint (a new prefix in the container).
    using var azurite = PipelineDsl.Azure.Testing.AzuriteServer.Start();
    Console.WriteLine($"Keyed count, checkpoint every 10 batches: local directory (fsync) against Azure Blob Storage (Azurite {azurite.ConnectionString.Split(';').First(p => p.StartsWith("BlobEndpoint", StringComparison.Ordinal))}); load average before: {LoadAverage()}.");
    int run = 0;
    var azure = Interleave(() => RunPipeline(true, 10), () => RunPipeline(true, 10,
        PipelineDsl.Azure.AzureBlobCheckpointStore.FromConnectionString(azurite.ConnectionString, "bench", "run-" + (run++).ToString(CultureInfo.InvariantCulture))));
    Console.WriteLine($"Local: {records / azure.Plain.Min(m => m.Wall):N0} records/s (best); Azure: {records / azure.Pipeline.Min(m => m.Wall):N0} records/s (best); "
                      + $"Azure / local: {Median(azure.Ratios):F2} (median of {repeat} rounds; best {azure.Ratios.Max():F2}).");
    return 0;
}

if (parsed.GetValue(profileOption) is { } profile)
{
    // For a profiler (dotnet-trace) or a quick look at GC: run one scenario (keyed or map-filter) repeatedly.
    var until = Stopwatch.StartNew();
    int n = 0;
    bool profileKeyed = profile.StartsWith("keyed", StringComparison.Ordinal);
    int? profileCheckpoint = profile == "keyed-10" ? 10 : null;
    RunPipeline(profileKeyed, profileCheckpoint);
    // Where a batch's time goes, from the PipelineDsl meter's phase durations (summed over the timed runs).
    var phases = new PipelineDsl.Bench.Shared.PhaseTotals();
    phases.Start();
    long allocated0 = GC.GetTotalAllocatedBytes(precise: true);
    var pause0 = GC.GetTotalPauseDuration(); int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
    until.Restart();
    while (until.Elapsed < TimeSpan.FromSeconds(10)) { RunPipeline(profileKeyed, profileCheckpoint); n++; }
    phases.Dispose();
    Console.WriteLine($"Allocated per run: {(GC.GetTotalAllocatedBytes(precise: true) - allocated0) / n / 1048576.0:F0} MiB");
    Console.WriteLine("Per run: " + phases.Describe(n));
    Console.WriteLine($"{n} runs: {until.Elapsed.TotalMilliseconds / n:F0} ms/run; GC pause {(GC.GetTotalPauseDuration()-pause0).TotalMilliseconds/n:F0} ms/run, gen0 {(GC.CollectionCount(0)-g0)/(double)n:F1} gen1 {(GC.CollectionCount(1)-g1)/(double)n:F1} gen2 {(GC.CollectionCount(2)-g2)/(double)n:F1}");
    pause0 = GC.GetTotalPauseDuration(); g0 = GC.CollectionCount(0); g1 = GC.CollectionCount(1); g2 = GC.CollectionCount(2);
    long plainAllocated0 = GC.GetTotalAllocatedBytes(precise: true);
    var t = profileKeyed ? PlainKeyedCount() : PlainMapFilter();
    Console.WriteLine($"Plain loop allocated {(GC.GetTotalAllocatedBytes(precise: true) - plainAllocated0) / 1048576.0:F0} MiB");
    Console.WriteLine($"plain {t.TotalMilliseconds:F0} ms; GC pause {(GC.GetTotalPauseDuration()-pause0).TotalMilliseconds:F0} ms, gen0 {GC.CollectionCount(0)-g0} gen1 {GC.CollectionCount(1)-g1} gen2 {GC.CollectionCount(2)-g2}");
    return 0;
}

// Each scenario runs interleaved with its plain loop, round after round, in this one process: a noisy
// neighbour slows both sides of a round alike. The report gives the best and the median round's ratio, and
// per-core rates from CPU time (user + system of this process), not wall time.
Console.WriteLine($"Load average before the run: {LoadAverage()}; {repeat} interleaved rounds per scenario, after one warm-up round.");
Console.WriteLine();
Console.WriteLine("| scenario | records/s (best) | ratio to its plain loop: best | median | per core, records per CPU-s (best) | per-core ratio (median) |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|");
var results = new Dictionary<string, Interleaved>();
foreach (var (name, plain, pipeline) in new (string, Func<TimeSpan>, Func<TimeSpan>)[]
{
    ("map+filter, checkpoint off", PlainMapFilter, () => RunPipeline(false, null)),
    ("map+filter, checkpoint every 10 batches", PlainMapFilter, () => RunPipeline(false, 10)),
    ("map+filter, checkpoint every batch", PlainMapFilter, () => RunPipeline(false, 1)),
    ("keyed count, checkpoint off", PlainKeyedCount, () => RunPipeline(true, null)),
    ("keyed count, checkpoint every 10 batches", PlainKeyedCount, () => RunPipeline(true, 10)),
    ("keyed count, checkpoint every batch", PlainKeyedCount, () => RunPipeline(true, 1)),
})
{
    var r = results[name] = Interleave(plain, pipeline);
    Console.WriteLine($"| {name} | {records / r.Pipeline.Min(m => m.Wall):N0} | {r.Ratios.Max():F2} | {Median(r.Ratios):F2} | {records / r.Pipeline.Min(m => m.Cpu):N0} | {Median(r.CpuRatios):F2} |");
}

Console.WriteLine();
Console.WriteLine($"Plain loops (best): map+filter {records / results["map+filter, checkpoint off"].Plain.Min(m => m.Wall):N0} records/s, keyed count {records / results["keyed count, checkpoint off"].Plain.Min(m => m.Wall):N0} records/s.");
double Rate(string name) => records / results[name].Pipeline.Min(m => m.Wall);
Console.WriteLine($"Checkpoint overhead at every 10 batches (vs off, best runs): keyed count {(1 - Rate("keyed count, checkpoint every 10 batches") / Rate("keyed count, checkpoint off")) * 100:F1}%, "
                  + $"map+filter {(1 - Rate("map+filter, checkpoint every 10 batches") / Rate("map+filter, checkpoint off")) * 100:F1}%.");
Console.WriteLine();

// Scaling: the keyed count at parallelism 1 against the configured parallelism, interleaved the same way.
if (parallelism > 1)
{
    int configured = parallelism;
    TimeSpan At(int p)
    {
        parallelism = p;
        try
        {
            return RunPipeline(true, 10);
        }
        finally
        {
            parallelism = configured;
        }
    }

    var scaling = Interleave(() => At(1), () => At(configured));
    double speedup = Median(scaling.Ratios);
    Console.WriteLine($"Keyed count, checkpoint every 10 batches, parallelism {configured} against 1: speedup {speedup:F2}x (median of {repeat} rounds; best {scaling.Ratios.Max():F2}x), "
                      + $"efficiency per core {speedup / configured:P0}; CPU time per record {1 / Median(scaling.CpuRatios):F2}x that of parallelism 1.");
    Console.WriteLine();
}

// Restart with 1,000,000 keys of state: build the state, stop (final snapshot), then time a new run's recovery.
{
    const int restartKeys = 1_000_000;
    string checkpoint = Path.Combine(temp, "restart");
    var source = new MemorySource<Click>(1);
    source.Add(0, Enumerable.Range(0, restartKeys).Select(i => new Click("key-" + i.ToString("D7", CultureInfo.InvariantCulture), i)));
    var options = new PipelineRunnerOptions { CheckpointDirectory = checkpoint, Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 200_000 };
    var first = new PipelineRunner(KeyedCount.Definition, options).BindSource(KeyedCount.In(), source).BindSink(KeyedCount.Out(), new CountingSink<UserCount>()).RunAsync().GetAwaiter().GetResult();
    long snapshotBytes = new DirectoryInfo(Path.Combine(checkpoint, "state")).GetFiles().Max(f => f.Length);

    // A fresh process would also pay JIT; this measures the restore itself, in a new runner.
    source.Add(0, new Click("key-0000000", 1));
    var watch = Stopwatch.StartNew();
    var second = new PipelineRunner(KeyedCount.Definition, options).BindSource(KeyedCount.In(), source).BindSink(KeyedCount.Out(), new CountingSink<UserCount>()).RunAsync().GetAwaiter().GetResult();
    Console.WriteLine($"Restart with {first.StateKeys:N0} keys of state ({snapshotBytes / 1024.0 / 1024.0:F1} MiB snapshot): resumed processing after "
                      + $"{second.RecoveryTime.TotalMilliseconds:F0} ms (restore from snapshot {second.RestoredFromBatch}); the whole run took {watch.Elapsed.TotalMilliseconds:F0} ms.");
}

try
{
    Directory.Delete(temp, recursive: true);
}
catch (IOException)
{
}
return 0;

static double Median(IReadOnlyList<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

static string LoadAverage()
{
    try
    {
        return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) + " (1, 5, 15 min)";
    }
    catch (IOException)
    {
        return "unknown";
    }
}

/// <summary>Runs <paramref name="plain"/> and <paramref name="pipeline"/> alternately: one warm-up round, then the timed ones.</summary>
Interleaved Interleave(Func<TimeSpan> plain, Func<TimeSpan> pipeline)
{
    Measure(plain);
    Measure(pipeline);
    var result = new Interleaved();
    for (int i = 0; i < repeat; i++)
    {
        var a = Measure(plain);
        var b = Measure(pipeline);
        result.Plain.Add(a);
        result.Pipeline.Add(b);
        result.Ratios.Add(a.Wall / b.Wall);
        result.CpuRatios.Add(a.Cpu / b.Cpu);
    }

    return result;
}

static (double Wall, double Cpu) Measure(Func<TimeSpan> run)
{
    GC.Collect();
    GC.WaitForPendingFinalizers();
    var process = Process.GetCurrentProcess();
    var cpu = process.TotalProcessorTime;
    double wall = run().TotalSeconds;
    process.Refresh();
    return (wall, (process.TotalProcessorTime - cpu).TotalSeconds);
}

/// <summary>One scenario's interleaved rounds: each side's (wall, CPU) seconds and the per-round ratios (plain / pipeline).</summary>
sealed class Interleaved
{
    public List<(double Wall, double Cpu)> Plain { get; } = new();

    public List<(double Wall, double Cpu)> Pipeline { get; } = new();

    public List<double> Ratios { get; } = new();

    public List<double> CpuRatios { get; } = new();
}
