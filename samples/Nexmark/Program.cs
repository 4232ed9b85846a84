using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PipelineDsl.Checkpointing;
using PipelineDsl;
using PipelineDsl.Execution;
using PipelineDsl.Nexmark;
using PipelineDsl.Samples.Nexmark;
using PipelineDsl.Sources;

// Nexmark queries on the embedded generator, exactly once, restartable at any instant.
//   dotnet run --project samples/Nexmark -- --query q5                 (1,000,000 canonical events)
//   ... -- --query q7 --events 10000000 --checkpoint DIR --output DIR [--batch-events N] [--generators G]
//   ... -- list                                                        (the queries)
//   ... -- --help                                                      (every option)
return await NexmarkCli.RunAsync(args);

internal static class NexmarkCli
{
    public static Task<int> RunAsync(string[] args)
    {
        var query = new Option<string>("--query") { Description = "The query, q0..q22 (see 'list')", DefaultValueFactory = _ => "q5" };
        query.AcceptOnlyFromAmong(QueryCatalog.All.Select(q => q.Name).ToArray());
        var events = new Option<long>("--events") { Description = "Canonical events to generate", DefaultValueFactory = _ => 1_000_000 }.Positive();
        var generators = new Option<int>("--generators") { Description = "Event generators (the spec's num-event-generators)", DefaultValueFactory = _ => 1 }.Positive();
        var batchEvents = new Option<long>("--batch-events") { Description = "Events per batch per generator", DefaultValueFactory = _ => 10_000 }.Positive();
        var checkpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "Checkpoint directory (default: ./nexmark-work/QUERY/checkpoint)" };
        var output = new Option<DirectoryInfo>("--output") { Description = "Output directory (default: ./nexmark-work/QUERY/output)" };
        var interval = new Option<int>("--checkpoint-interval") { Description = "A state snapshot every K batches", DefaultValueFactory = _ => 10 }.Positive();
        var pause = new Option<int>("--pause-ms") { Description = "Pause after each committed batch (throttles a run)", DefaultValueFactory = _ => 0 }.NotNegative();
        var quiet = new Option<bool>("--quiet") { Description = "Print nothing but errors" };
        var rocksdb = new Option<DirectoryInfo>("--rocksdb") { Description = "Keep keyed state in RocksDB in this local directory instead of in memory" };
        var root = new RootCommand("Nexmark queries on the embedded generator, exactly once, restartable at any instant.")
        {
            query, events, generators, batchEvents, checkpoint, output, interval, pause, quiet, rocksdb,
        };
        root.SetAction(async (r, _) =>
        {
            try
            {
                return await RunQueryAsync(new Settings(r.GetValue(query)!, r.GetValue(events), r.GetValue(generators), r.GetValue(batchEvents),
                    r.GetValue(checkpoint)?.FullName, r.GetValue(output)?.FullName, r.GetValue(interval), r.GetValue(pause), r.GetValue(quiet), r.GetValue(rocksdb)?.FullName));
            }
            catch (Exception e) when (e is PipelineDslException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        var list = new Command("list", "List the queries.");
        list.SetAction(_ =>
        {
            foreach (var q in QueryCatalog.All) Console.WriteLine($"{q.Name,-4} {q.Description}");
            return 0;
        });
        root.Subcommands.Add(list);
        return CommandLineProgram.RunAsync(root, args);
    }

    private sealed record Settings(string Query, long Events, int Generators, long BatchEvents, string? Checkpoint, string? Output, int CheckpointInterval, int PauseMs, bool Quiet, string? RocksDb);

    private static async Task<int> RunQueryAsync(Settings a)
    {
        var query = QueryCatalog.Get(a.Query);
        string work = Path.GetFullPath(Path.Combine("nexmark-work", query.Name));
        string checkpoint = a.Checkpoint ?? Path.Combine(work, "checkpoint");
        string output = a.Output ?? Path.Combine(work, "output");
        bool quiet = a.Quiet;
        var config = new NexmarkConfiguration
        {
            NumEvents = a.Events,
            NumEventGenerators = a.Generators,
        };
        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = checkpoint,
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = a.BatchEvents,
            CheckpointInterval = a.CheckpointInterval,
            StateBackend = a.RocksDb is null ? StateBackend.InMemory : new RocksDbStateBackend(a.RocksDb),
        };

        var (runner, sink) = query.CreateRunner(options, new NexmarkSource(config), output);
        // A pause after each committed batch: throttles a run, e.g. so that a test's kill lands mid-run.
        int pauseMs = a.PauseMs;
        if (pauseMs > 0) runner.BatchCompleted += _ => Thread.Sleep(pauseMs);
        if (!quiet)
        {
            Console.WriteLine($"nexmark {query.Name} ({query.Description}): {config.NumEvents:N0} events, {config.NumEventGenerators} generator(s)");
            Console.WriteLine($"  checkpoint {checkpoint}");
            Console.WriteLine($"  output     {output}");
            runner.BatchCompleted += p => Console.WriteLine(
                $"batch {p.BatchId,4}: {p.InputRecords,9:N0} events -> {p.OutputRecords,8:N0} rows in {p.Duration.TotalMilliseconds,6:F0} ms, state {p.StateKeys,8:N0} keys"
                + (p.Replayed ? "  (replayed)" : "") + (p.SnapshotWritten ? "  [snapshot]" : "") + (p.LateRecords > 0 ? $"  {p.LateRecords} late" : ""));
        }

        var clock = Stopwatch.StartNew();
        var summary = await runner.RunAsync();
        if (!quiet)
        {
            Console.WriteLine(summary.Restored ? $"restored the checkpoint at batch {summary.LastCommittedBatch - summary.BatchesRun}" : "new checkpoint");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"done: {summary.InputRecords:N0} events in {clock.Elapsed.TotalSeconds:F2} s, {sink.Rows:N0} rows written to {output}"));
        }

        return 0;
    }
}
