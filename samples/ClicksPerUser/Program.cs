using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using ClicksPerUser;
using PipelineDsl;
using PipelineDsl.Azure;
using PipelineDsl.Checkpointing;
using PipelineDsl.Graph;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

// The main job: clicks per user over the files of a directory, exactly once, restartable at any instant.
//   dotnet run --project samples/ClicksPerUser                    (bundled input, work under ./clicks-per-user-work)
//   ... -- --input DIR --checkpoint DIR --output DIR [--bounded | --continuous] [--max-records-per-partition N]
//   ... -- --rocksdb DIR ...                                       (per-user state in RocksDB, incremental snapshots)
//   ... -- --azure-container NAME ...                             (checkpoint in Azure Blob Storage; account from AZURE_STORAGE_CONNECTION_STRING)
//   ... -- generate --records N --files F --output DIR            (make a larger input)
//   ... -- serve [--urls http://127.0.0.1:9464]                   (as a service: /metrics, /health/live, /health/ready, /status)
//   ... -- describe                                                (print the graph and manifest)
//   ... -- --help                                                  (every option)
return await Cli.RunAsync(args);

internal static class Cli
{
    public static Task<int> RunAsync(string[] args)
    {
        var input = new Option<DirectoryInfo>("--input") { Description = "Directory of input files (default: the bundled clicks, processed once)" };
        var checkpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "Checkpoint directory (default: ./clicks-per-user-work/checkpoint)" };
        var output = new Option<DirectoryInfo>("--output") { Description = "Output directory, one file per batch (default: ./clicks-per-user-work/output)" };
        var bounded = new Option<bool>("--bounded") { Description = "Stop when the input present at start is processed (the default for the bundled input)" };
        var continuous = new Option<bool>("--continuous") { Description = "Keep watching the input for new data until Ctrl+C or SIGTERM (the default for --input)" };
        var maxRecords = new Option<long>("--max-records-per-partition") { Description = "Records read per input file per batch", DefaultValueFactory = _ => 1000 }.Positive();
        var interval = new Option<int>("--checkpoint-interval") { Description = "A state snapshot every K batches", DefaultValueFactory = _ => 10 }.Positive();
        var batchInterval = new Option<long>("--batch-interval-ms") { Description = "Milliseconds between batch starts in continuous mode", DefaultValueFactory = _ => 1000 }.Positive();
        var deadLetter = new Option<bool>("--dead-letter") { Description = "Write unparsable records to dead letters instead of failing" };
        var quiet = new Option<bool>("--quiet") { Description = "Print only the summary" };
        var azureContainer = new Option<string>("--azure-container")
        {
            Description = "Keep the checkpoint in this Azure Blob Storage container instead of a directory; the account comes from the AZURE_STORAGE_CONNECTION_STRING environment variable",
        };
        var azurePrefix = new Option<string>("--azure-prefix") { Description = "The checkpoint's folder in the container", DefaultValueFactory = _ => "clicks-per-user" };
        var takeoverAfter = new Option<int>("--takeover-after-ms")
        {
            Description = "With --azure-container: how long the checkpoint's holder may stay silent before another process takes it over", DefaultValueFactory = _ => 5000,
        }.Positive();
        var outageLimit = new Option<int>("--azure-outage-limit-ms")
        {
            Description = "With --azure-container: how long to keep retrying while Azure Blob Storage does not answer before failing the run", DefaultValueFactory = _ => 60_000,
        }.Positive();
        var azureOutput = new Option<bool>("--azure-output")
        {
            Description = "With --azure-container: write the output as blobs <prefix>-output/part-N.txt in the same container instead of --output",
        };
        var rocksdb = new Option<DirectoryInfo>("--rocksdb")
        {
            Description = "Keep the per-user state in RocksDB in this local directory (state larger than memory, incremental snapshots) instead of in memory",
        };
        var standby = new Option<bool>("--standby")
        {
            Description = "Start as a hot standby: while another process runs the job on this checkpoint, follow its commits and take over when it stops or fails",
        };
        var root = new RootCommand("Clicks per user over the files of a directory, exactly once, restartable at any instant (kill -9 it and run it again).")
        {
            input, checkpoint, output, bounded, continuous, maxRecords, interval, batchInterval, deadLetter, quiet, azureContainer, azurePrefix, takeoverAfter, standby, azureOutput, outageLimit, rocksdb,
        };
        root.Validators.Add(r =>
        {
            if (r.GetValue(bounded) && r.GetValue(continuous)) r.AddError("--bounded and --continuous exclude each other.");
            if (r.GetValue(azureOutput) && r.GetValue(azureContainer) is null) r.AddError("--azure-output needs --azure-container.");
            if (r.GetValue(azureOutput) && r.GetValue(output) is not null) r.AddError("--output and --azure-output exclude each other.");
            if (r.GetValue(checkpoint) is not null && r.GetValue(azureContainer) is not null) r.AddError("--checkpoint and --azure-container exclude each other: the checkpoint is in a directory or in Azure Blob Storage.");
        });
        root.SetAction((r, _) => Guarded(() => RunJobAsync(new JobSettings(
            r.GetValue(input)?.FullName, r.GetValue(checkpoint)?.FullName, r.GetValue(output)?.FullName,
            r.GetValue(bounded), r.GetValue(continuous), r.GetValue(maxRecords), r.GetValue(interval),
            r.GetValue(batchInterval), r.GetValue(deadLetter), r.GetValue(quiet),
            r.GetValue(azureContainer) is { } container ? new AzureCheckpoint(container, r.GetValue(azurePrefix)!, TimeSpan.FromMilliseconds(r.GetValue(takeoverAfter)), r.GetValue(azureOutput), TimeSpan.FromMilliseconds(r.GetValue(outageLimit))) : null,
            r.GetValue(standby), r.GetValue(rocksdb)?.FullName))));

        var records = new Option<long>("--records") { Description = "Number of clicks", DefaultValueFactory = _ => 100_000 }.NotNegative();
        var files = new Option<int>("--files") { Description = "Number of files", DefaultValueFactory = _ => 4 }.Positive();
        var users = new Option<int>("--users") { Description = "Number of distinct users", DefaultValueFactory = _ => 10_000 }.Positive();
        var generateOutput = new Option<DirectoryInfo>("--output") { Description = "Directory to write the files to", Required = true };
        var generate = new Command("generate", "Write a deterministic input: the same arguments always give the same files.") { records, files, users, generateOutput };
        generate.SetAction((r, _) => Guarded(() => Task.FromResult(Generate(r.GetValue(records), r.GetValue(files), r.GetValue(users), r.GetValue(generateOutput)!.FullName))));
        root.Subcommands.Add(generate);

        var demoRecords = new Option<long>("--records") { Description = "Number of clicks", DefaultValueFactory = _ => 1_000_000 }.Positive();
        var demoKills = new Option<int>("--kills") { Description = "How many times to kill the active replica", DefaultValueFactory = _ => 5 }.NotNegative();
        var demoEvery = new Option<int>("--kill-every-ms") { Description = "The longest time between kills: a kill comes sooner once the active replica has run its share of the batches", DefaultValueFactory = _ => 4000 }.Positive();
        var haDemo = new Command("ha-demo", "High availability in one command: Azurite, three replicas on one checkpoint there, the active one killed every few seconds, the output checked against an uninterrupted run.")
        {
            demoRecords, demoKills, demoEvery,
        };
        haDemo.SetAction((r, _) => Guarded(() => ClicksPerUser.HaDemo.RunAsync(r.GetValue(demoRecords), r.GetValue(demoKills), TimeSpan.FromMilliseconds(r.GetValue(demoEvery)))));
        root.Subcommands.Add(haDemo);

        var serveInput = new Option<DirectoryInfo>("--input") { Description = "Directory of input files, watched for new data (default: the bundled clicks)" };
        var serveCheckpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "Checkpoint directory (default: ./clicks-per-user-work/checkpoint; or configuration key Pipeline:CheckpointDirectory)" };
        var serveOutput = new Option<DirectoryInfo>("--output") { Description = "Output directory (default: ./clicks-per-user-work/output)" };
        var serveReceive = new Option<DirectoryInfo>("--receive") { Description = "Take clicks over HTTP instead of from input files: POST /ingest with CSV lines (user,url,timestampMs,isBot) and an Idempotency-Key header, logged in a write-ahead log in this directory before the answer" };
        var urls = new Option<string>("--urls") { Description = "Where the web endpoints listen; loopback unless you say otherwise", DefaultValueFactory = _ => "http://127.0.0.1:9464" };
        var serve = new Command("serve", "Run the job as a service until SIGTERM or Ctrl+C: .NET hosting, structured logs, /metrics for Prometheus, /health/live, /health/ready and /status. "
                                         + "Pipeline options come from configuration section 'Pipeline' (appsettings.json, environment variables such as Pipeline__BatchInterval=00:00:00.500, or --Pipeline:Key=value).")
        {
            serveInput, serveCheckpoint, serveOutput, serveReceive, urls,
        };
        serve.TreatUnmatchedTokensAsErrors = false; // --Pipeline:Key=value goes to the configuration
        serve.SetAction((r, _) => Guarded(() => Serve.RunAsync(r.GetValue(serveInput)?.FullName, r.GetValue(serveCheckpoint)?.FullName, r.GetValue(serveOutput)?.FullName,
            r.GetValue(urls)!, r.UnmatchedTokens.ToArray(), r.GetValue(serveReceive)?.FullName)));
        root.Subcommands.Add(serve);

        var describe = new Command("describe", "Print the operator graph and the manifest that every checkpoint carries.");
        describe.SetAction(_ => Describe());
        root.Subcommands.Add(describe);

        return CommandLineProgram.RunAsync(root, args);
    }

    private sealed record JobSettings(string? Input, string? Checkpoint, string? Output, bool Bounded, bool Continuous, long MaxRecordsPerPartition,
                                      int CheckpointInterval, long BatchIntervalMs, bool DeadLetter, bool Quiet, AzureCheckpoint? Azure, bool Standby, string? RocksDb);

    private sealed record AzureCheckpoint(string Container, string Prefix, TimeSpan TakeoverAfter, bool Output, TimeSpan OutageLimit);

    /// <summary>The checkpoint in Azure Blob Storage (the account from AZURE_STORAGE_CONNECTION_STRING), or null for a directory.</summary>
    private static ICheckpointStore? AzureStore(AzureCheckpoint? azure) =>
        azure is null ? null : AzureBlobCheckpointStore.FromConnectionString(AzureConnection(), azure.Container, azure.Prefix, new AzureBlobCheckpointStoreOptions { TakeoverAfter = azure.TakeoverAfter, OutageLimit = azure.OutageLimit });

    private static string AzureConnection() =>
        Environment.GetEnvironmentVariable("AZURE_STORAGE_CONNECTION_STRING") is { Length: > 0 } c
            ? c
            : throw new ArgumentException("--azure-container needs the storage account's connection string in the AZURE_STORAGE_CONNECTION_STRING environment variable (for Azurite: its development connection string).");

    /// <summary>A failed run is one "error:" line and exit code 1, never a stack trace.</summary>
    private static async Task<int> Guarded(Func<Task<int>> run)
    {
        try
        {
            return await run();
        }
        catch (Exception e) when (e is PipelineDslException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static async Task<int> RunJobAsync(JobSettings a)
    {
        bool bundled = a.Input is null;
        string work = Path.GetFullPath("clicks-per-user-work");
        string input = a.Input ?? Path.Combine(AppContext.BaseDirectory, "data");
        string checkpoint = a.Checkpoint ?? Path.Combine(work, "checkpoint");
        string output = a.Output ?? Path.Combine(work, "output");
        // With the bundled input the job processes it and stops; with your own input it keeps watching.
        bool bounded = a.Bounded || (bundled && !a.Continuous);
        bool quiet = a.Quiet;

        var azureStore = AzureStore(a.Azure);
        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = azureStore is null ? checkpoint : null,
            CheckpointStore = azureStore,
            Trigger = bounded ? TriggerMode.AvailableNow : TriggerMode.Continuous,
            MaxRecordsPerPartition = a.MaxRecordsPerPartition,
            CheckpointInterval = a.CheckpointInterval,
            BatchInterval = TimeSpan.FromMilliseconds(a.BatchIntervalMs),
            BadRecordPolicy = a.DeadLetter ? BadRecordPolicy.DeadLetter : BadRecordPolicy.Fail,
            Standby = a.Standby,
            StateBackend = a.RocksDb is null ? StateBackend.InMemory : new RocksDbStateBackend(a.RocksDb),
        };

        var runner = new PipelineRunner(ClicksPerUserPipeline.Definition, options)
            .BindSource(ClicksPerUserPipeline.Clicks(), new FileDirectorySource<ClickEvent>(input, ClickEvent.Parse,
                new FileDirectorySourceOptions { OnWarning = w => Console.Error.WriteLine("warning: " + w) }))
            .BindSink(ClicksPerUserPipeline.Totals(), a.Azure is { Output: true } azure
                ? AzureBlobSink<UserTotals>.FromConnectionString(AzureConnection(), azure.Container, azure.Prefix + "-output", t => t.ToCsv(), new AzureBlobSinkOptions { OutageLimit = azure.OutageLimit })
                : new FileSink<UserTotals>(output, t => t.ToCsv()));

        if (!quiet)
        {
            // The process id, so that "kill -9" reaches this process and not a "dotnet run" wrapper around it.
            Console.WriteLine($"clicks-per-user: process {Environment.ProcessId}");
            Console.WriteLine($"                 input {input}{(bundled ? " (the bundled clicks, copied beside the built program)" : "")}");
            Console.WriteLine($"                 checkpoint {azureStore?.Location ?? checkpoint}");
            Console.WriteLine($"                 output {(a.Azure is { Output: true } az ? $"blobs {az.Prefix}-output/part-N.txt in container {az.Container}" : output)} ({(bounded ? "bounded: stops when the input is processed" : "continuous: Ctrl+C to stop")})");
            if (a.Standby)
            {
                long lastPrinted = -1;
                var printed = System.Diagnostics.Stopwatch.StartNew();
                runner.StandbyProgressed += p =>
                {
                    if (p.TookOver)
                    {
                        Console.WriteLine($"standby: took over the checkpoint after {p.Waited.TotalSeconds:F1} s, with state through batch {(p.FollowedThroughBatch is long b ? b.ToString(CultureInfo.InvariantCulture) : "none")}; now active");
                    }
                    else if (p.FollowedThroughBatch is long b && (lastPrinted < 0 || printed.Elapsed >= TimeSpan.FromSeconds(1)))
                    {
                        // At most a line a second: a standby applies every commit of the active.
                        Console.WriteLine($"standby: following, state through batch {b}");
                        lastPrinted = b;
                        printed.Restart();
                    }
                };
            }

            var idle = new IdleReporter();
            runner.BatchCompleted += p =>
            {
                if (idle.Skip(p)) return;
                Console.WriteLine(
                    $"batch {p.BatchId,5}: {p.InputRecords,7:N0} records -> {p.OutputRecords,7:N0} out in {p.Duration.TotalMilliseconds,6:F0} ms, state {p.StateKeys,7:N0} keys"
                    + (p.Replayed ? "  (replayed to rebuild state)" : "")
                    + (p.SnapshotWritten ? "  [snapshot]" : "")
                    + (p.DeadLetters > 0 ? $"  {p.DeadLetters} dead letters" : ""));
            };
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
            $"done: {(summary.Restored ? $"restored from {(summary.RestoredFromBatch is long s ? $"snapshot {s}" : a.Standby ? "the state followed as a standby" : "the start")} + {summary.BatchesFromDeltas} batch deltas, replayed {summary.BatchesReplayed} batches, in {summary.RecoveryTime.TotalMilliseconds:F0} ms; " : "new checkpoint; ")}"
            + $"ran {summary.BatchesRun} batches, {summary.InputRecords:N0} records in {summary.Elapsed.TotalSeconds:F2} s; "
            + $"last committed batch {summary.LastCommittedBatch}; {summary.StateKeys:N0} users in state"
            + (summary.FinalSnapshotBatch is long f ? $"; final snapshot of batch {f}" : ""));
        foreach (var tail in summary.UnreadTails ?? Array.Empty<UnreadTail>())
        {
            Console.Error.WriteLine($"warning: {Path.Combine(input, tail.Partition)} ends with {tail.Length} bytes after its last newline (from byte {tail.Position}): "
                                    + "a line is read once it ends with a newline, so it was not read yet");
        }

        return 0;
    }

    private static int Describe()
    {
        var definition = ClicksPerUserPipeline.Definition;
        Console.WriteLine($"pipeline '{definition.PipelineId}'");
        foreach (var op in definition.Manifest.Operators)
        {
            string inputs = op.Inputs.Count == 0 ? "" : " <- " + string.Join(", ", op.Inputs);
            string state = op.StateSchema is { } s ? $"  state {s.ValueSchema} ({s.Fingerprint})" : "";
            Console.WriteLine($"  {op.Kind,-14} {op.Id} v{op.Version}{inputs}{state}");
        }

        Console.WriteLine();
        Console.Write(ClicksPerUserPipeline.ManifestJson);
        return 0;
    }

    /// <summary>Writes a deterministic input: the same arguments always give the same files.</summary>
    private static int Generate(long records, int files, int users, string output)
    {
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
