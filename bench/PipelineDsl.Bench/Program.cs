using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using PipelineDsl;
using PipelineDsl.Bench;
using PipelineDsl.Checkpointing;
using PipelineDsl.Sources;

// Runtime benchmark: records/s of map+filter and keyed count through the PipelineRunner (checkpointing
// every batch, every 10 batches, off) against a plain C# loop doing the same work, all in one run on
// the same in-memory data; then the time a restart with 1,000,000 keys of state takes to resume.
//   dotnet run -c Release --project bench/PipelineDsl.Bench [-- --records N --keys K --repeat R]
var recordsOption = new Option<long>("--records") { Description = "Records per run", DefaultValueFactory = _ => 4_000_000 }.Positive();
var keysOption = new Option<int>("--keys") { Description = "Distinct keys", DefaultValueFactory = _ => 100_000 }.Positive();
var repeatOption = new Option<int>("--repeat") { Description = "Runs of each scenario; the best counts", DefaultValueFactory = _ => 5 }.Positive();
var parallelismOption = new Option<int>("--parallelism") { Description = "Pipeline parallelism (default: the number of cores)", DefaultValueFactory = _ => Environment.ProcessorCount }.Positive();
var profileOption = new Option<string?>("--profile") { Description = "Run one scenario repeatedly for a profiler: keyed or map-filter" };
profileOption.AcceptOnlyFromAmong("keyed", "map-filter");
var root = new RootCommand("Runtime benchmark: map+filter and keyed count through the runner against a plain C# loop, in one run; then restart time.")
{
    recordsOption, keysOption, repeatOption, parallelismOption, profileOption,
};
if (CommandLineProgram.Parse(root, args, out var parsed) is int exit) return exit;
long records = parsed.GetValue(recordsOption);
int keys = parsed.GetValue(keysOption);
int repeat = parsed.GetValue(repeatOption);
int parallelism = parsed.GetValue(parallelismOption);
const int partitions = 4;
const int batches = 20;
long perPartitionPerBatch = records / partitions / batches;

Console.WriteLine($"# PipelineDsl runtime benchmark");
Console.WriteLine();
Console.WriteLine($"{records:N0} records, {keys:N0} keys, {partitions} partitions, {batches} batches of {records / batches:N0}; "
                  + $"{Environment.ProcessorCount} cores; .NET {Environment.Version}; best of {repeat} runs each.");
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
double Best(Func<TimeSpan> run)
{
    run(); // warm-up (JIT, tiering)
    double best = double.MaxValue;
    for (int i = 0; i < repeat; i++)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        best = Math.Min(best, run().TotalSeconds);
    }

    return records / best;
}

TimeSpan RunPipeline(bool keyed, int? checkpointEvery)
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
    if (checkpointEvery is null) options.CheckpointStore = new InMemoryCheckpointStore();
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

if (parsed.GetValue(profileOption) is { } profile)
{
    // For a profiler (dotnet-trace) or a quick look at GC: run one scenario (keyed or map-filter) repeatedly.
    var until = Stopwatch.StartNew();
    int n = 0;
    RunPipeline(profile == "keyed", null);
    var pause0 = GC.GetTotalPauseDuration(); int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
    until.Restart();
    while (until.Elapsed < TimeSpan.FromSeconds(10)) { RunPipeline(profile == "keyed", null); n++; }
    Console.WriteLine($"{n} runs: {until.Elapsed.TotalMilliseconds / n:F0} ms/run; GC pause {(GC.GetTotalPauseDuration()-pause0).TotalMilliseconds/n:F0} ms/run, gen0 {(GC.CollectionCount(0)-g0)/n} gen1 {(GC.CollectionCount(1)-g1)/n} gen2 {(GC.CollectionCount(2)-g2)/n}");
    pause0 = GC.GetTotalPauseDuration(); g0 = GC.CollectionCount(0); g1 = GC.CollectionCount(1); g2 = GC.CollectionCount(2);
    var t = PlainKeyedCount();
    Console.WriteLine($"plain {t.TotalMilliseconds:F0} ms; GC pause {(GC.GetTotalPauseDuration()-pause0).TotalMilliseconds:F0} ms, gen0 {GC.CollectionCount(0)-g0} gen1 {GC.CollectionCount(1)-g1} gen2 {GC.CollectionCount(2)-g2}");
    return 0;
}

var rows = new List<(string Name, double Rate, double Baseline)>();
double plainMapFilter = Best(PlainMapFilter);
double plainKeyed = Best(PlainKeyedCount);
rows.Add(("map+filter, plain C# loop (baseline)", plainMapFilter, plainMapFilter));
rows.Add(("map+filter, checkpoint off", Best(() => RunPipeline(false, null)), plainMapFilter));
rows.Add(("map+filter, checkpoint every 10 batches", Best(() => RunPipeline(false, 10)), plainMapFilter));
rows.Add(("map+filter, checkpoint every batch", Best(() => RunPipeline(false, 1)), plainMapFilter));
rows.Add(("keyed count, plain C# loop (baseline)", plainKeyed, plainKeyed));
rows.Add(("keyed count, checkpoint off", Best(() => RunPipeline(true, null)), plainKeyed));
rows.Add(("keyed count, checkpoint every 10 batches", Best(() => RunPipeline(true, 10)), plainKeyed));
rows.Add(("keyed count, checkpoint every batch", Best(() => RunPipeline(true, 1)), plainKeyed));

Console.WriteLine("| scenario | records/s | ratio to its plain loop |");
Console.WriteLine("|---|---:|---:|");
foreach (var (name, rate, baseline) in rows) Console.WriteLine($"| {name} | {rate:N0} | {rate / baseline:F2} |");
Console.WriteLine();
double off = rows.Single(x => x.Name == "keyed count, checkpoint off").Rate;
double every10 = rows.Single(x => x.Name == "keyed count, checkpoint every 10 batches").Rate;
double mfOff = rows.Single(x => x.Name == "map+filter, checkpoint off").Rate;
double mf10 = rows.Single(x => x.Name == "map+filter, checkpoint every 10 batches").Rate;
Console.WriteLine($"Checkpoint overhead at every 10 batches (vs off): keyed count {(1 - every10 / off) * 100:F1}%, map+filter {(1 - mf10 / mfOff) * 100:F1}%.");
Console.WriteLine();

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
