using System.Globalization;
using System.Runtime.InteropServices;
using ClicksPerUser;
using PipelineDsl;
using PipelineDsl.Checkpointing;
using PipelineDsl.Graph;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

// The main job: clicks per user over the files of a directory, exactly once, restartable at any instant.
//   dotnet run --project samples/ClicksPerUser                    (bundled input, work under ./clicks-per-user-work)
//   ... -- --input DIR --checkpoint DIR --output DIR [--bounded | --continuous] [--max-records-per-partition N]
//   ... -- generate --records N --files F --output DIR            (make a larger input)
//   ... -- describe                                                (print the graph and manifest)
return await Cli.RunAsync(args);

internal static class Cli
{
    private static readonly string[] Flags = { "bounded", "continuous", "quiet", "dead-letter" };

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            if (args.Length > 0 && args[0] == "generate") return Generate(Arguments.Parse(args[1..], Flags));
            if (args.Length > 0 && args[0] == "describe") return Describe();
            return await RunJobAsync(Arguments.Parse(args, Flags));
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("usage: ClicksPerUser [--input DIR] [--checkpoint DIR] [--output DIR] [--bounded|--continuous] [--max-records-per-partition N] [--checkpoint-interval K] [--batch-interval-ms MS] [--dead-letter] [--quiet]");
            Console.Error.WriteLine("       ClicksPerUser generate --records N [--files F] [--users U] --output DIR");
            Console.Error.WriteLine("       ClicksPerUser describe");
            return 2;
        }
        catch (Exception e) when (e is BadRecordException or CheckpointLockedException or CheckpointMismatchException or CheckpointIncompatibleException
                                      or PipelineExecutionException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static async Task<int> RunJobAsync(Arguments a)
    {
        bool bundled = a.Value("input") is null;
        string work = Path.GetFullPath("clicks-per-user-work");
        string input = a.Value("input") ?? Path.Combine(AppContext.BaseDirectory, "data");
        string checkpoint = a.Value("checkpoint") ?? Path.Combine(work, "checkpoint");
        string output = a.Value("output") ?? Path.Combine(work, "output");
        // With the bundled input the job processes it and stops; with your own input it keeps watching.
        bool bounded = a.Flag("bounded") || (bundled && !a.Flag("continuous"));
        bool quiet = a.Flag("quiet");

        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = checkpoint,
            Trigger = bounded ? TriggerMode.AvailableNow : TriggerMode.Continuous,
            MaxRecordsPerPartition = a.Long("max-records-per-partition", 1000),
            CheckpointInterval = (int)a.Long("checkpoint-interval", 10),
            BatchInterval = TimeSpan.FromMilliseconds(a.Long("batch-interval-ms", 1000)),
            BadRecordPolicy = a.Flag("dead-letter") ? BadRecordPolicy.DeadLetter : BadRecordPolicy.Fail,
        };

        var runner = new PipelineRunner(ClicksPerUserPipeline.Definition, options)
            .BindSource(ClicksPerUserPipeline.Clicks(), new FileDirectorySource<ClickEvent>(input, ClickEvent.Parse))
            .BindSink(ClicksPerUserPipeline.Totals(), new FileSink<UserTotals>(output, t => t.ToCsv()));

        if (!quiet)
        {
            Console.WriteLine($"clicks-per-user: input {input}");
            Console.WriteLine($"                 checkpoint {checkpoint}");
            Console.WriteLine($"                 output {output} ({(bounded ? "bounded: stops when the input is processed" : "continuous: Ctrl+C to stop")})");
            runner.BatchCompleted += p => Console.WriteLine(
                $"batch {p.BatchId,5}: {p.InputRecords,7:N0} records -> {p.OutputRecords,7:N0} out in {p.Duration.TotalMilliseconds,6:F0} ms, state {p.StateKeys,7:N0} keys"
                + (p.Replayed ? "  (replayed to rebuild state)" : "")
                + (p.SnapshotWritten ? "  [snapshot]" : "")
                + (p.DeadLetters > 0 ? $"  {p.DeadLetters} dead letters" : ""));
        }

        using var stop = new CancellationTokenSource();
        int interrupts = 0;
        void RequestStop(string signal)
        {
            if (Interlocked.Increment(ref interrupts) == 1)
            {
                Console.Error.WriteLine($"{signal}: finishing the current batch, then stopping (again to abandon it; it re-runs on restart)");
                stop.Cancel();
            }
            else
            {
                Console.Error.WriteLine($"{signal}: abandoning the current batch");
                Environment.Exit(130);
            }
        }

        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            RequestStop("Ctrl+C");
        };
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            RequestStop("SIGTERM");
        });

        var summary = await runner.RunAsync(stop.Token);
        Console.WriteLine(
            $"done: {(summary.Restored ? $"restored from {(summary.RestoredFromBatch is long s ? $"snapshot {s}" : "the start")} + {summary.BatchesFromDeltas} batch deltas, replayed {summary.BatchesReplayed} batches, in {summary.RecoveryTime.TotalMilliseconds:F0} ms; " : "new checkpoint; ")}"
            + $"ran {summary.BatchesRun} batches, {summary.InputRecords:N0} records in {summary.Elapsed.TotalSeconds:F2} s; "
            + $"last committed batch {summary.LastCommittedBatch}; {summary.StateKeys:N0} users in state");
        return 0;
    }

    private static int Describe()
    {
        var definition = ClicksPerUserPipeline.Definition;
        Console.WriteLine($"pipeline '{definition.PipelineId}'");
        foreach (var op in definition.Operators)
        {
            string inputs = op.Inputs.Count == 0 ? "" : " <- " + string.Join(", ", op.Inputs.Select(i => i.Id));
            string state = definition.Manifest.Find(op.Id)?.StateSchema is { } s ? $"  state {s.ValueSchema} ({s.Fingerprint})" : "";
            Console.WriteLine($"  {OperatorManifest.KindName(op.Kind),-14} {op.Id} v{op.Version}{inputs}{state}");
        }

        Console.WriteLine();
        Console.Write(ClicksPerUserPipeline.ManifestJson);
        return 0;
    }

    /// <summary>Writes a deterministic input: the same arguments always give the same files.</summary>
    private static int Generate(Arguments a)
    {
        long records = a.Long("records", 100_000);
        int files = (int)a.Long("files", 4);
        int users = (int)a.Long("users", 10_000);
        string output = a.Value("output") ?? throw new UsageException("generate needs --output DIR");
        if (records < 0 || files < 1 || users < 1) throw new UsageException("--records must be 0 or more, --files and --users 1 or more");
        Directory.CreateDirectory(output);
        string[] pages = { "/", "/home", "/search", "/cart", "/checkout", "/help", "/item/1", "/item/2", "/item/3" };
        for (int f = 0; f < files; f++)
        {
            var random = new Random(1000 + f);
            long count = records / files + (f < records % files ? 1 : 0);
            string temp = Path.Combine(output, $".clicks-{f:D3}.csv.tmp");
            using (var writer = new StreamWriter(temp))
            {
                writer.NewLine = "\n";
                long t = 1_767_225_600_000 + f;
                for (long i = 0; i < count; i++)
                {
                    t += random.Next(1, 50);
                    bool bot = random.Next(20) == 0;
                    writer.WriteLine($"user-{random.Next(users):D5},{pages[random.Next(pages.Length)]},{t},{(bot ? "1" : "0")}");
                }
            }

            File.Move(temp, Path.Combine(output, $"clicks-{f:D3}.csv"), overwrite: true);
        }

        Console.WriteLine($"wrote {records:N0} clicks of {users:N0} users in {files} files to {Path.GetFullPath(output)}");
        return 0;
    }
}
