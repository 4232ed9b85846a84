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
return await NexmarkCli.RunAsync(args);

internal static class NexmarkCli
{
    private static readonly string[] Flags = { "quiet" };

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            if (args.Length > 0 && args[0] == "list")
            {
                foreach (var q in QueryCatalog.All) Console.WriteLine($"{q.Name,-4} {q.Description}");
                return 0;
            }

            return await RunQueryAsync(Arguments.Parse(args, Flags));
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("usage: Nexmark [--query q0..q22] [--events N] [--generators G] [--batch-events N] [--checkpoint DIR] [--output DIR] [--checkpoint-interval K] [--pause-ms N] [--quiet]");
            Console.Error.WriteLine("       Nexmark list");
            return 2;
        }
        catch (Exception e) when (e is CheckpointLockedException or CheckpointMismatchException or CheckpointIncompatibleException
                                      or PipelineExecutionException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static async Task<int> RunQueryAsync(Arguments a)
    {
        var query = QueryCatalog.Get(a.Value("query") ?? "q5");
        string work = Path.GetFullPath(Path.Combine("nexmark-work", query.Name));
        string checkpoint = a.Value("checkpoint") ?? Path.Combine(work, "checkpoint");
        string output = a.Value("output") ?? Path.Combine(work, "output");
        bool quiet = a.Flag("quiet");
        var config = new NexmarkConfiguration
        {
            NumEvents = a.Long("events", 1_000_000),
            NumEventGenerators = (int)a.Long("generators", 1),
        };
        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = checkpoint,
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = a.Long("batch-events", 10_000),
            CheckpointInterval = (int)a.Long("checkpoint-interval", 10),
        };

        var (runner, sink) = query.CreateRunner(options, new NexmarkSource(config), output);
        // A pause after each committed batch: throttles a run, e.g. so that a test's kill lands mid-run.
        int pauseMs = (int)a.Long("pause-ms", 0);
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
