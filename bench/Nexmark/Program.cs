using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using PipelineDsl;
using PipelineDsl.Nexmark;
using PipelineDsl.Nexmark.Tests;
using PipelineDsl.Samples.Nexmark;

// Nexmark benchmark: for each query, in separate processes (so that peak memory is per run):
//   generate  - the generator alone, the events touched and dropped;
//   reference - the plain, framework-free query over the same events (tests/.../References.cs);
//   pipeline  - the DSL pipeline with exactly-once checkpointing on (default interval), blackhole sink.
// Every figure of a row is measured in the same run, so the ratios hold on a shared, noisy machine.
// Each mode runs --repeat times, interleaved, and the best run counts: noise on a shared machine only ever
// slows a run down, so the fastest of a few is the steadiest figure (peak memory is the largest of the runs).
//   dotnet run -c Release --project bench/Nexmark -- [--events N] [--warmup-events N] [--queries q0,q5] [--batch-events N] [--state-deltas off] [--parallelism N] [--repeat N]
var culture = CultureInfo.InvariantCulture;
var eventsOption = new Option<long>("--events") { Description = "Timed events per run", DefaultValueFactory = _ => 2_000_000 }.Positive();
var batchEventsOption = new Option<long>("--batch-events") { Description = "Events per batch", DefaultValueFactory = _ => 10_000 }.Positive();
// Per-batch state deltas are on by default (exact recovery without re-running batches); off, state is
// checkpointed only by the snapshot every 10 batches, as in Flink and Spark Streaming (see README.md#checkpoints-and-recovery).
var stateDeltasOption = new Option<string>("--state-deltas") { Description = "Write a state delta with every commit", DefaultValueFactory = _ => "on" };
stateDeltasOption.AcceptOnlyFromAmong("on", "off");
// One core by default, like the single-threaded reference: "per core" is then measured, not divided. Handing
// batches of 10,000 cheap records to more threads costs CPU time (thread wake-ups) that this 2-core machine
// does not win back, so on it a parallel run does fewer events per CPU-second (about 10 % fewer for q0 and q5).
var parallelismOption = new Option<int>("--parallelism") { Description = "Pipeline parallelism", DefaultValueFactory = _ => 1 }.Positive();
var repeatOption = new Option<int>("--repeat") { Description = "Runs of each mode; the best counts", DefaultValueFactory = _ => 3 }.Positive();
// Each run first processes this many events untimed, in the same process and on the same settings, so the
// timed part measures the steady state a streaming job runs in, not the one-time JIT compilation of the code
// it runs (tiered compilation is off, so every method is compiled fully optimized at its first call). The
// default covers 20 batches, so that snapshots, window firings and state expiry have all run once. Flink's
// Nexmark likewise starts measuring only after nexmark.metric.monitor.delay. --warmup-events 0: cold figures.
var warmupOption = new Option<long>("--warmup-events") { Description = "Untimed warm-up events per run (0: cold figures)", DefaultValueFactory = _ => 200_000 }.NotNegative();
var backendOption = new Option<string>("--backend") { Description = "State backend of the pipelines: in-memory or rocksdb (in a temporary directory)", DefaultValueFactory = _ => "in-memory" };
backendOption.AcceptOnlyFromAmong("in-memory", "rocksdb");
var queriesOption = new Option<string?>("--queries") { Description = "Comma-separated queries (default: all)" };
var runOption = new Option<string?>("--run") { Description = "Internal: run one mode (generate, reference, pipeline) in this process", Hidden = true };
var queryOption = new Option<string>("--query") { Description = "Internal: the query of --run", DefaultValueFactory = _ => "q0", Hidden = true };
var root = new RootCommand("Nexmark benchmark: every query as pipeline, plain C# reference and generation alone, in one run.")
{
    eventsOption, batchEventsOption, stateDeltasOption, parallelismOption, repeatOption, warmupOption, backendOption, queriesOption, runOption, queryOption,
};
if (CommandLineProgram.Parse(root, args, out var parsed) is int exit) return exit;
long events = parsed.GetValue(eventsOption);
long batchEvents = parsed.GetValue(batchEventsOption);
bool stateDeltas = parsed.GetValue(stateDeltasOption) != "off";
int parallelism = parsed.GetValue(parallelismOption);
// The child runs read the backend from the environment (set here for them), beside their other settings.
if (parsed.GetValue(runOption) is null) Environment.SetEnvironmentVariable("NEXMARK_BENCH_BACKEND", parsed.GetValue(backendOption));
int repeat = parsed.GetValue(repeatOption);
long warmupEvents = parsed.GetValue(warmupOption);

if (parsed.GetValue(runOption) is { } mode)
{
    Console.WriteLine(RunOne(mode, parsed.GetValue(queryOption)!, events, warmupEvents, batchEvents, stateDeltas, parallelism).ToString());
    return 0;
}

var queries = (parsed.GetValue(queriesOption) ?? string.Join(",", QueryCatalog.All.Select(q => q.Name))).Split(',');
var flink = new Dictionary<string, double> { ["q0"] = 155.02, ["q1"] = 157.94, ["q2"] = 175.21, ["q3"] = 152.12, ["q4"] = 34.33, ["q5"] = 22.14, ["q7"] = 12.33, ["q8"] = 146.14, ["q9"] = 14.24, ["q10"] = 57.81, ["q11"] = 39.7, ["q12"] = 75.67, ["q13"] = 130.73, ["q14"] = 161.23, ["q15"] = 72.42, ["q16"] = 18.65, ["q17"] = 116.8, ["q18"] = 53.7, ["q19"] = 44.04, ["q20"] = 18.98, ["q21"] = 98.49, ["q22"] = 129.96 };
Console.WriteLine($"Nexmark on the {parsed.GetValue(backendOption)} state backend, {events:N0} canonical events per run (after {warmupEvents:N0} untimed warm-up events), {Environment.ProcessorCount} cores, pipeline parallelism {parallelism}, batches of {batchEvents:N0} events, snapshot every 10 batches, state deltas {(stateDeltas ? "on" : "off")}, best of {repeat} runs");
Console.WriteLine("k ev/s = thousand events per second of wall time; per core = events per CPU-second (the process's user+system time, as Flink's figures count cores used)");
Console.WriteLine();
Console.WriteLine("| query | pipeline k ev/s | per core | Flink 1.13 per core | x Flink | reference k ev/s | pipeline / reference | generation-only k ev/s | pipeline / generation | pipeline peak MB | reference peak MB |");
Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
foreach (var q in queries)
{
    Result gen = default, reference = default, pipeline = default;
    for (int r = 0; r < repeat; r++)
    {
        gen = Result.Best(gen, Measure("generate", q));
        reference = Result.Best(reference, Measure("reference", q));
        pipeline = Result.Best(pipeline, Measure("pipeline", q));
    }

    string vsFlink = flink.TryGetValue(q, out double f) ? (pipeline.PerCore / 1000 / f).ToString("F1", culture) : "n/a";
    string flinkText = flink.TryGetValue(q, out f) ? f.ToString("F1", culture) : "no result";
    Console.WriteLine(string.Create(culture,
        $"| {q} | {pipeline.Wall / 1000:F0} | {pipeline.PerCore / 1000:F0} | {flinkText} | {vsFlink} | {reference.Wall / 1000:F0} | {pipeline.Wall / reference.Wall:F2} | {gen.Wall / 1000:F0} | {pipeline.Wall / gen.Wall:F2} | {pipeline.PeakMb:F0} | {reference.PeakMb:F0} |"));
}

return 0;

Result Measure(string mode, string query)
{
    var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
    if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") start.ArgumentList.Add(typeof(Result).Assembly.Location);
    foreach (var a in new[] { "--run", mode, "--query", query, "--events", events.ToString(culture), "--warmup-events", warmupEvents.ToString(culture), "--batch-events", batchEvents.ToString(culture), "--state-deltas", stateDeltas ? "on" : "off", "--parallelism", parallelism.ToString(culture) })
        start.ArgumentList.Add(a);
    using var child = Process.Start(start)!;
    string output = child.StandardOutput.ReadToEnd();
    child.WaitForExit();
    if (child.ExitCode != 0) throw new InvalidOperationException($"{mode} {query} failed: {output}");
    return Result.Parse(output.Trim().Split('\n')[^1]);
}

static Result RunOne(string mode, string query, long events, long warmupEvents, long batchEvents, bool stateDeltas, int parallelism)
{
    if (warmupEvents > 0) GC.KeepAlive(Execute(mode, query, warmupEvents, batchEvents, stateDeltas, parallelism));
    using var largeObjects = Environment.GetEnvironmentVariable("NEXMARK_BENCH_LOH") == "1" ? new LargeObjectListener() : null;
    // NEXMARK_BENCH_PHASES=1: where the batches' time went (the PipelineDsl meter's phase durations), on stderr.
    using var phases = new PipelineDsl.Bench.Shared.PhaseTotals();
    if (Environment.GetEnvironmentVariable("NEXMARK_BENCH_PHASES") == "1") phases.Start();
    var process = Process.GetCurrentProcess();
    GC.Collect();
    var cpu0 = process.TotalProcessorTime;
    var clock = Stopwatch.StartNew();
    long sink = Execute(mode, query, events, batchEvents, stateDeltas, parallelism);
    clock.Stop();
    process.Refresh();
    double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
    GC.KeepAlive(sink);
    // NEXMARK_BENCH_GC=1: where the time went (collections, pause, allocation), on stderr.
    if (largeObjects is not null)
        foreach (var (type, samples) in largeObjects.Samples.OrderByDescending(p => p.Value)) Console.Error.WriteLine($"large object heap: {samples} samples of {type}");
    if (Environment.GetEnvironmentVariable("NEXMARK_BENCH_GC") == "1")
        Console.Error.WriteLine($"gc0={GC.CollectionCount(0)} gc1={GC.CollectionCount(1)} gc2={GC.CollectionCount(2)} pause={GC.GetTotalPauseDuration().TotalMilliseconds:F0}ms alloc={GC.GetTotalAllocatedBytes() / 1048576}MB cpu={cpu:F2}s wall={clock.Elapsed.TotalSeconds:F2}s");
    if (!phases.IsEmpty)
        Console.Error.WriteLine($"phases (warm-up included): {phases.Describe()}; wall={clock.Elapsed.TotalSeconds:F2}s");
    return new Result(events / clock.Elapsed.TotalSeconds, events / cpu, process.PeakWorkingSet64 / 1048576.0);
}

// One run of a mode over the first `events` canonical events; returns a figure the caller keeps alive.
static long Execute(string mode, string query, long events, long batchEvents, bool stateDeltas, int parallelism)
{
    var config = new NexmarkConfiguration { NumEvents = events };
    switch (mode)
    {
        case "generate":
            var generator = new NexmarkGenerator(config);
            long sum = 0;
            for (long k = 0; k < events; k++) sum += generator.Generate(k).DateTime;
            return sum;
        case "reference":
            return References.ByQuery[query](Generate(config)).Count;
        case "pipeline":
            string dir = Path.Combine(Path.GetTempPath(), "nexmark-bench-" + Guid.NewGuid().ToString("N"));
            try
            {
                var options = new PipelineRunnerOptions { CheckpointDirectory = dir, Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = batchEvents, WriteStateDeltas = stateDeltas, Parallelism = parallelism };
                if (Environment.GetEnvironmentVariable("NEXMARK_BENCH_BACKEND") == "rocksdb") options.StateBackend = new RocksDbStateBackend(dir + "-rocksdb");
                // q10 is about its file sink, so it writes its files (Flink's q10 does too); the others end in a blackhole.
                var (runner, rows) = QueryCatalog.Get(query).CreateRunner(options, new NexmarkSource(config), query == "q10" ? Path.Combine(dir, "q10-out") : null);
                var summary = runner.RunAsync().GetAwaiter().GetResult();
                if (summary.InputRecords != events) throw new InvalidOperationException($"read {summary.InputRecords} events, expected {events}");
                return rows.Rows;
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
                if (Directory.Exists(dir + "-rocksdb")) Directory.Delete(dir + "-rocksdb", recursive: true);
            }

        default:
            throw new ArgumentException($"unknown mode '{mode}'");
    }
}

static IEnumerable<Event> Generate(NexmarkConfiguration config)
{
    var generator = new NexmarkGenerator(config);
    for (long k = 0; k < generator.Count; k++) yield return generator.Generate(k);
}

internal readonly record struct Result(double Wall, double PerCore, double PeakMb)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Wall:F1} {PerCore:F1} {PeakMb:F1}");

    /// <summary>The faster of two runs (by wall time, which the ratios use), with the larger peak memory; default is no run yet.</summary>
    public static Result Best(Result a, Result b) =>
        a == default ? b : (a.Wall >= b.Wall ? a : b) with { PeakMb = Math.Max(a.PeakMb, b.PeakMb) };

    public static Result Parse(string line)
    {
        var p = line.Split(' ');
        return new Result(double.Parse(p[0], CultureInfo.InvariantCulture), double.Parse(p[1], CultureInfo.InvariantCulture), double.Parse(p[2], CultureInfo.InvariantCulture));
    }
}

/// <summary>
/// NEXMARK_BENCH_LOH=1: which types land in the large object heap (sampled, one event per ~100 KB allocated).
/// Allocations there count against a budget whose overrun makes the next collection a full one, which is how
/// per-snapshot buffers and per-window tables once made nearly every collection of q5 and q9 a gen-2 one.
/// </summary>
internal sealed class LargeObjectListener : EventListener
{
    public ConcurrentDictionary<string, long> Samples { get; } = new();

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName is null || !e.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.PayloadNames is null || e.Payload is null) return;
        if (Convert.ToInt32(e.Payload[e.PayloadNames.IndexOf("AllocationKind")], CultureInfo.InvariantCulture) != 1) return; // 1 = large object heap
        Samples.AddOrUpdate((string?)e.Payload[e.PayloadNames.IndexOf("TypeName")] ?? "?", 1, (_, n) => n + 1);
    }
}
