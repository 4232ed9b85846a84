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
return await Cli.RunAsync(args);

internal static class Cli
{
    private static readonly string[] Flags = { "bounded", "continuous", "quiet", "dead-letter", "produce-bundled" };

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            if (args.Length > 0 && args[0] == "dev-broker") return KafkaDevBroker.Run(args[1..], Console.In, Console.Out);
            return await RunJobAsync(Arguments.Parse(args, Flags));
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("usage: KafkaClicks [--bootstrap-servers HOST:PORT] [--input-topic T] [--output-topic T] [--checkpoint DIR] [--bounded|--continuous]");
            Console.Error.WriteLine("                   [--max-records-per-partition N] [--checkpoint-interval K] [--batch-interval-ms MS] [--dead-letter] [--produce-bundled] [--quiet]");
            Console.Error.WriteLine("       KafkaClicks dev-broker [--brokers N] [--topic NAME:PARTITIONS]...");
            return 2;
        }
        catch (Exception e) when (e is BadRecordException or CheckpointLockedException or CheckpointMismatchException or CheckpointIncompatibleException
                                      or PipelineExecutionException or KafkaConnectorException or IOException or ArgumentException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static async Task<int> RunJobAsync(Arguments a)
    {
        string inputTopic = a.Value("input-topic") ?? "clicks";
        string outputTopic = a.Value("output-topic") ?? "user-totals";
        bool quiet = a.Flag("quiet");
        string work = Path.GetFullPath("kafka-clicks-work");
        using var broker = a.Value("bootstrap-servers") is null ? DevBrokerProcess.Start(inputTopic, outputTopic) : null;
        string servers = a.Value("bootstrap-servers") ?? broker!.BootstrapServers;
        bool embedded = broker is not null;
        string checkpoint = a.Value("checkpoint") ?? Path.Combine(work, "checkpoint");
        if (embedded && a.Value("checkpoint") is null && Directory.Exists(checkpoint))
        {
            // The embedded broker starts empty every time, so offsets from an earlier run mean nothing to it.
            Directory.Delete(checkpoint, recursive: true);
        }

        bool bounded = a.Flag("bounded") || (embedded && !a.Flag("continuous"));
        Dictionary<string, long>? expected = null;
        if (embedded || a.Flag("produce-bundled"))
        {
            expected = ProduceBundled(servers, inputTopic);
            if (!quiet) Console.WriteLine($"kafka-clicks: loaded {expected.Values.Sum():N0} human clicks (and the bots) of the bundled data into '{inputTopic}'");
        }

        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = checkpoint,
            Trigger = bounded ? TriggerMode.AvailableNow : TriggerMode.Continuous,
            MaxRecordsPerPartition = a.Long("max-records-per-partition", 2000),
            CheckpointInterval = (int)a.Long("checkpoint-interval", 10),
            BatchInterval = TimeSpan.FromMilliseconds(a.Long("batch-interval-ms", 500)),
            BadRecordPolicy = a.Flag("dead-letter") ? BadRecordPolicy.DeadLetter : BadRecordPolicy.Fail,
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
            process.Kill();
            throw new IOException($"the embedded dev broker did not start (it said: {first ?? "nothing"}); is librdkafka 2.1+ installed? See scripts/install-librdkafka.sh.");
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
