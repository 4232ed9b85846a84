using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaClicks;
using PipelineDsl;
using PipelineDsl.Kafka;
using PipelineDsl.Kafka.Testing;

// Kafka end to end on librdkafka's mock cluster, in one run: topic -> pipeline (filter + keyed count, exactly-once
// transactional sink, checkpoint every 10 batches) -> topic, against a plain Confluent.Kafka consume -> produce
// loop doing the same per-record work.
//   dotnet run -c Release --project bench/PipelineDsl.Kafka.Bench [-- --records N --repeat R]
var recordsOption = new Option<int>("--records") { Description = "Records per run", DefaultValueFactory = _ => 300_000 }.Positive();
var repeatOption = new Option<int>("--repeat") { Description = "Runs of each scenario; the best counts", DefaultValueFactory = _ => 3 }.Positive();
var root = new RootCommand("Kafka benchmark on librdkafka's mock cluster: the pipeline against a plain consume-produce loop, in one run.") { recordsOption, repeatOption };
if (CommandLineProgram.Parse(root, args, out var parsed) is int exit) return exit;
int records = parsed.GetValue(recordsOption);
int repeat = parsed.GetValue(repeatOption);
const int partitions = 4;

using var cluster = new KafkaMockCluster(brokers: 1);
string servers = cluster.BootstrapServers;
cluster.CreateTopic("clicks", partitions);
var humans = 0L;
using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = servers, LingerMs = 5 }).Build())
{
    for (int n = 0; n < records; n++)
    {
        string user = "user-" + (n % 10_000).ToString("D5", CultureInfo.InvariantCulture);
        bool bot = n % 20 == 19;
        if (!bot) humans++;
        var value = Encoding.UTF8.GetBytes($"{user},/p/{n % 9},{1_767_225_600_000L + n},{(bot ? 1 : 0)}");
        while (true)
        {
            try
            {
                producer.Produce("clicks", new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(user), Value = value });
                break;
            }
            catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(10));
            }
        }
    }

    producer.Flush(TimeSpan.FromSeconds(60));
}

Console.WriteLine("# PipelineDsl Kafka benchmark (librdkafka mock cluster, in process)");
Console.WriteLine();
Console.WriteLine($"{records:N0} input records in {partitions} partitions ({humans:N0} human clicks); {Environment.ProcessorCount} cores; .NET {Environment.Version}; best of {repeat} runs each.");
Console.WriteLine();

int run = 0;
string temp = Path.Combine(Path.GetTempPath(), "pdsl-kafka-bench-" + Guid.NewGuid().ToString("N"));

// The plain loop: one consumer assigned to every partition, parse, skip bots, count per user, produce the total.
TimeSpan Plain()
{
    string output = "plain-" + run++;
    cluster.CreateTopic(output, partitions);
    var watch = Stopwatch.StartNew();
    var counts = new Dictionary<string, long>(StringComparer.Ordinal);
    using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
    {
        BootstrapServers = servers, GroupId = "plain-" + Guid.NewGuid().ToString("N"), EnablePartitionEof = true, EnableAutoCommit = false,
        IsolationLevel = IsolationLevel.ReadCommitted, FetchWaitMaxMs = 10,
    }).Build();
    using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = servers, LingerMs = 5, EnableIdempotence = true, QueueBufferingMaxMessages = 1_000_000 }).Build();
    consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset("clicks", p, Offset.Beginning)));
    int eof = 0;
    long written = 0;
    while (eof < partitions)
    {
        var m = consumer.Consume(TimeSpan.FromSeconds(10)) ?? throw new TimeoutException("plain loop stalled");
        if (m.IsPartitionEOF) { eof++; continue; }
        var click = ClickEvent.Parse(Encoding.UTF8.GetString(m.Message.Value));
        if (click.IsBot) continue;
        long n = counts[click.UserId] = counts.GetValueOrDefault(click.UserId) + 1;
        var total = new UserTotals(click.UserId, n, click.TimestampMs);
        producer.Produce(output, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(total.UserId), Value = Encoding.UTF8.GetBytes(total.ToCsv()) });
        written++;
    }

    producer.Flush(TimeSpan.FromSeconds(60));
    if (written != humans) throw new InvalidOperationException($"plain loop wrote {written}");
    return watch.Elapsed;
}

// The pipeline: direct source, the sample's pipeline, one transaction per batch, checkpoint every 10 batches.
TimeSpan Pipeline()
{
    string output = "pipeline-" + run++;
    cluster.CreateTopic(output, partitions);
    var watch = Stopwatch.StartNew();
    using var source = new KafkaSource<ClickEvent>(new KafkaSourceOptions<ClickEvent>
    {
        BootstrapServers = servers, Topics = new[] { "clicks" }, Deserialize = m => ClickEvent.Parse(Encoding.UTF8.GetString(m.Value!)),
    });
    using var sink = new KafkaSink<UserTotals>(new KafkaSinkOptions<UserTotals>
    {
        BootstrapServers = servers, Topic = output,
        Serialize = t => new KafkaRecord(Encoding.UTF8.GetBytes(t.UserId), Encoding.UTF8.GetBytes(t.ToCsv())),
        TransactionalId = "bench-" + output,
    });
    var summary = new PipelineRunner(KafkaClicksPipeline.Definition, new PipelineRunnerOptions
        {
            CheckpointDirectory = Path.Combine(temp, output),
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = 10_000,
            CheckpointInterval = 10,
        })
        .BindSource(KafkaClicksPipeline.Clicks(), source)
        .BindSink(KafkaClicksPipeline.Totals(), sink)
        .RunAsync().GetAwaiter().GetResult();
    if (summary.InputRecords != records) throw new InvalidOperationException($"pipeline read {summary.InputRecords}");
    return watch.Elapsed;
}

double Best(Func<TimeSpan> measure)
{
    measure(); // warm-up
    double best = double.MaxValue;
    for (int i = 0; i < repeat; i++)
    {
        GC.Collect();
        best = Math.Min(best, measure().TotalSeconds);
    }

    return records / best;
}

double plain = Best(Plain);
double pipeline = Best(Pipeline);
Console.WriteLine("| scenario | records/s | ratio to the plain loop |");
Console.WriteLine("|---|---:|---:|");
Console.WriteLine($"| plain Confluent.Kafka consume -> produce loop (baseline) | {plain:N0} | 1.00 |");
Console.WriteLine($"| pipeline: direct source -> filter + keyed count -> transactional sink, checkpoint every 10 batches | {pipeline:N0} | {pipeline / plain:F2} |");
try
{
    Directory.Delete(temp, recursive: true);
}
catch (IOException)
{
}
return 0;
