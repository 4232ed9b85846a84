using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;
using KafkaClicks;
using PipelineDsl;
using PipelineDsl.Checkpointing;
using PipelineDsl.Kafka;
using PipelineDsl.Sources;

// Clicks per user from Kafka to Kafka, exactly once.
//   dotnet run --project samples/KafkaClicks
//       no brokers given: starts the embedded dev broker, loads the bundled clicks, runs, prints the result
//   ... -- --bootstrap-servers HOST:PORT [--input-topic clicks] [--output-topic user-totals] [--checkpoint DIR]
//          [--bounded | --continuous] [--max-records-per-partition N] [--checkpoint-interval K]
//          [--batch-interval-ms MS] [--dead-letter] [--produce-bundled] [--quiet]
//   ... -- dev-broker [--brokers N] [--topic NAME:PARTITIONS]...   (the development broker on its own)
//   ... -- --help                                                  (every option)
return await Cli.RunAsync(args);

internal static class Cli
{
    public static Task<int> RunAsync(string[] args)
    {
        var servers = new Option<string?>("--bootstrap-servers") { Description = "Kafka brokers (default: start the embedded dev broker, load the bundled clicks)" };
        var inputTopic = new Option<string>("--input-topic") { Description = "Topic to read clicks from", DefaultValueFactory = _ => "clicks" };
        var outputTopic = new Option<string>("--output-topic") { Description = "Topic to write per-user totals to", DefaultValueFactory = _ => "user-totals" };
        var checkpoint = new Option<DirectoryInfo>("--checkpoint") { Description = "Checkpoint directory (default: ./kafka-clicks-work/checkpoint)" };
        var bounded = new Option<bool>("--bounded") { Description = "Stop when the topic's end at start is reached (the default with the embedded broker)" };
        var continuous = new Option<bool>("--continuous") { Description = "Keep reading until Ctrl+C or SIGTERM (the default with --bootstrap-servers)" };
        var maxRecords = new Option<long>("--max-records-per-partition") { Description = "Records read per partition per batch", DefaultValueFactory = _ => 2000 }.Positive();
        var interval = new Option<int>("--checkpoint-interval") { Description = "A state snapshot every K batches", DefaultValueFactory = _ => 10 }.Positive();
        var batchInterval = new Option<long>("--batch-interval-ms") { Description = "Milliseconds between batch starts in continuous mode", DefaultValueFactory = _ => 500 }.Positive();
        var deadLetter = new Option<bool>("--dead-letter") { Description = "Write unparsable records to dead letters instead of failing" };
        var produceBundled = new Option<bool>("--produce-bundled") { Description = "Load the bundled clicks into the input topic first" };
        var quiet = new Option<bool>("--quiet") { Description = "Print only the summary" };
        var root = new RootCommand("Clicks per user from Kafka to Kafka, exactly once.")
        {
            servers, inputTopic, outputTopic, checkpoint, bounded, continuous, maxRecords, interval, batchInterval, deadLetter, produceBundled, quiet,
        };
        root.Validators.Add(r =>
        {
            if (r.GetValue(bounded) && r.GetValue(continuous)) r.AddError("--bounded and --continuous exclude each other.");
        });
        root.SetAction(async (r, _) =>
        {
            try
            {
                return await RunJobAsync(new JobSettings(r.GetValue(servers), r.GetValue(inputTopic)!, r.GetValue(outputTopic)!, r.GetValue(checkpoint)?.FullName,
                    r.GetValue(bounded), r.GetValue(continuous), r.GetValue(maxRecords), r.GetValue(interval), r.GetValue(batchInterval),
                    r.GetValue(deadLetter), r.GetValue(produceBundled), r.GetValue(quiet)));
            }
            catch (Exception e) when (e is PipelineDslException or IOException or ArgumentException or InvalidOperationException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 1;
            }
        });
        root.Subcommands.Add(DevBrokerCommand.Create(new Command("dev-broker", "Run the development broker on its own (librdkafka's mock cluster on loopback).")));
        return CommandLineProgram.RunAsync(root, args);
    }

    private sealed record JobSettings(string? Servers, string InputTopic, string OutputTopic, string? Checkpoint, bool Bounded, bool Continuous,
                                      long MaxRecordsPerPartition, int CheckpointInterval, long BatchIntervalMs, bool DeadLetter, bool ProduceBundled, bool Quiet);

    private static async Task<int> RunJobAsync(JobSettings a)
    {
        // One clear line, instead of a stack trace from deep inside the first Kafka call, when librdkafka cannot load.
        KafkaLibrary.Load();
        string inputTopic = a.InputTopic;
        string outputTopic = a.OutputTopic;
        bool quiet = a.Quiet;
        string work = Path.GetFullPath("kafka-clicks-work");
        using var broker = a.Servers is null ? DevBrokerProcess.Start(inputTopic, outputTopic) : null;
        string servers = a.Servers ?? broker!.BootstrapServers;
        bool embedded = broker is not null;
        string checkpoint = a.Checkpoint ?? Path.Combine(work, "checkpoint");
        if (embedded && a.Checkpoint is null && Directory.Exists(checkpoint))
        {
            // The embedded broker starts empty every time, so offsets from an earlier run mean nothing to it.
            Directory.Delete(checkpoint, recursive: true);
        }

        bool bounded = a.Bounded || (embedded && !a.Continuous);
        Dictionary<string, long>? expected = null;
        if (embedded || a.ProduceBundled)
        {
            expected = ProduceBundled(servers, inputTopic);
            if (!quiet) Console.WriteLine($"kafka-clicks: loaded {expected.Values.Sum():N0} human clicks (and the bots) of the bundled data into '{inputTopic}'");
        }

        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = checkpoint,
            Trigger = bounded ? TriggerMode.AvailableNow : TriggerMode.Continuous,
            MaxRecordsPerPartition = a.MaxRecordsPerPartition,
            CheckpointInterval = a.CheckpointInterval,
            BatchInterval = TimeSpan.FromMilliseconds(a.BatchIntervalMs),
            BadRecordPolicy = a.DeadLetter ? BadRecordPolicy.DeadLetter : BadRecordPolicy.Fail,
        };

        using var source = new KafkaSource<ClickEvent>(new KafkaSourceOptions<ClickEvent>
        {
            BootstrapServers = servers,
            Topics = new[] { inputTopic },
            Deserialize = m => ClickEvent.Parse(Encoding.UTF8.GetString(m.Value ?? Array.Empty<byte>())),
            ProgressGroupId = "kafka-clicks-per-user",
            OnWarning = quiet ? null : w => Console.Error.WriteLine("warning: " + w),
        });
        using var sink = new KafkaSink<UserTotals>(new KafkaSinkOptions<UserTotals>
        {
            BootstrapServers = servers,
            Topic = outputTopic,
            Serialize = t => new KafkaRecord(Encoding.UTF8.GetBytes(t.UserId), Encoding.UTF8.GetBytes(t.ToCsv())),
            OnWarning = quiet ? null : w => Console.Error.WriteLine("warning: " + w),
        });
        var runner = new PipelineRunner(KafkaClicksPipeline.Definition, options)
            .BindSource(KafkaClicksPipeline.Clicks(), source)
            .BindSink(KafkaClicksPipeline.Totals(), sink);

        if (!quiet)
        {
            Console.WriteLine($"kafka-clicks: {servers}{(embedded ? " (embedded dev broker)" : "")}: '{inputTopic}' -> '{outputTopic}'");
            Console.WriteLine($"              checkpoint {checkpoint} ({(bounded ? "bounded: stops when the topic is processed" : "continuous: Ctrl+C to stop")})");
            runner.BatchCompleted += p => Console.WriteLine(
                $"batch {p.BatchId,5}: {p.InputRecords,7:N0} records -> {p.OutputRecords,7:N0} out in {p.Duration.TotalMilliseconds,6:F0} ms, state {p.StateKeys,7:N0} keys"
                + (p.SnapshotWritten ? "  [snapshot]" : "") + (p.DeadLetters > 0 ? $"  {p.DeadLetters} dead letters" : ""));
        }

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            stop.Cancel();
        });

        var summary = await runner.RunAsync(stop.Token);
        Console.WriteLine($"done: ran {summary.BatchesRun} batches, {summary.InputRecords:N0} records in {summary.Elapsed.TotalSeconds:F2} s; "
                          + $"last committed batch {summary.LastCommittedBatch}; {summary.StateKeys:N0} users in state; transactional id {sink.TransactionalId}");

        if (expected is not null && bounded)
        {
            // Read the output back as a consumer would, and check it against the input.
            var totals = ReadTotals(servers, outputTopic);
            var top = totals.OrderByDescending(t => t.Value).ThenBy(t => t.Key, StringComparer.Ordinal).Take(5);
            Console.WriteLine($"'{outputTopic}' holds totals of {totals.Count:N0} users; top: {string.Join(", ", top.Select(t => $"{t.Key} {t.Value}"))}");
            var wrong = expected.Where(e => !totals.TryGetValue(e.Key, out long n) || n != e.Value).ToList();
            if (wrong.Count > 0)
            {
                Console.Error.WriteLine($"error: {wrong.Count} users' totals differ from the input, for example {wrong[0].Key}: expected {wrong[0].Value}");
                return 1;
            }

            Console.WriteLine("every user's total equals its number of human clicks in the input.");
        }

        return 0;
    }

    /// <summary>Produces the bundled CSV files, keyed by user; returns each user's number of human clicks.</summary>
    private static Dictionary<string, long> ProduceBundled(string servers, string topic)
    {
        var expected = new Dictionary<string, long>(StringComparer.Ordinal);
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = servers, LingerMs = 5, EnableIdempotence = true }).Build();
        foreach (var file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "data"), "*.csv").Order(StringComparer.Ordinal))
        {
            foreach (var line in File.ReadLines(file))
            {
                var click = ClickEvent.Parse(line);
                if (!click.IsBot) expected[click.UserId] = expected.GetValueOrDefault(click.UserId) + 1;
                producer.Produce(topic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(click.UserId), Value = Encoding.UTF8.GetBytes(line) });
            }
        }

        producer.Flush(TimeSpan.FromSeconds(30));
        return expected;
    }

    /// <summary>The newest total per user in the output topic (read_committed).</summary>
    private static Dictionary<string, long> ReadTotals(string servers, string topic)
    {
        var totals = new Dictionary<string, long>(StringComparer.Ordinal);
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = servers,
            GroupId = "kafka-clicks-reader-" + Guid.NewGuid().ToString("N"),
            EnablePartitionEof = true,
            IsolationLevel = IsolationLevel.ReadCommitted,
            AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).Build();
        var partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics[0].Partitions.Select(p => new TopicPartitionOffset(topic, p.PartitionId, Offset.Beginning)).ToList();
        consumer.Assign(partitions);
        int eofs = 0;
        while (eofs < partitions.Count)
        {
            var r = consumer.Consume(TimeSpan.FromSeconds(10));
            if (r is null) break;
            if (r.IsPartitionEOF)
            {
                eofs++;
                continue;
            }

            var f = Encoding.UTF8.GetString(r.Message.Value).Split(',');
            long clicks = long.Parse(f[1], CultureInfo.InvariantCulture);
            totals[f[0]] = Math.Max(totals.GetValueOrDefault(f[0]), clicks);
        }

        return totals;
    }
}

/// <summary>This program started as "dev-broker" in a child process: the embedded default broker.</summary>
internal sealed class DevBrokerProcess : IDisposable
{
    private readonly Process _process;

    private DevBrokerProcess(Process process, string servers)
    {
        _process = process;
        BootstrapServers = servers;
    }

    public string BootstrapServers { get; }

    public static DevBrokerProcess Start(params string[] topics)
    {
        var start = new ProcessStartInfo { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        string self = Environment.ProcessPath!;
        start.FileName = self;
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(typeof(DevBrokerProcess).Assembly.Location);
        start.ArgumentList.Add("dev-broker");
        foreach (var topic in topics)
        {
            start.ArgumentList.Add("--topic");
            start.ArgumentList.Add(topic + ":4");
        }

        var process = Process.Start(start) ?? throw new IOException("could not start the embedded dev broker");
        string? first = process.StandardOutput.ReadLine();
        if (first is null || !first.StartsWith("bootstrap.servers=", StringComparison.Ordinal))
        {
            // Its error went to the same standard error as ours; it says what failed.
            process.Kill();
            throw new IOException("the embedded dev broker did not start" + (first is null ? " (see its error above)." : $": it said '{first}'."));
        }

        return new DevBrokerProcess(process, first["bootstrap.servers=".Length..]);
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.WriteLine("quit");
            _process.StandardInput.Flush();
            if (!_process.WaitForExit(5000)) _process.Kill();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
