using System.Globalization;
using System.Text;
using Confluent.Kafka;
using KafkaClicks;
using PipelineDsl.Sources;

namespace PipelineDsl.Kafka.Tests;

/// <summary>Producing and reading topics, and running the sample's pipeline in-process.</summary>
internal static class KafkaTestKit
{
    /// <summary>The click "user,url,timestampMs,isBot" of event n: 50 users, every 10th a bot, timestamp = n (unique).</summary>
    public static string Click(long n) => string.Create(CultureInfo.InvariantCulture, $"user-{n % 50:D2},/page/{n % 7},{n},{(n % 10 == 9 ? 1 : 0)}");

    public static bool IsHuman(long n) => n % 10 != 9;

    public static void Produce(string servers, string topic, IEnumerable<string> values)
    {
        using var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = servers, LingerMs = 2, EnableIdempotence = true }).Build();
        foreach (var value in values)
        {
            string user = value.Split(',')[0];
            producer.Produce(topic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(user), Value = Encoding.UTF8.GetBytes(value) });
        }

        Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
    }

    public static void ProduceClicks(string servers, string topic, long from, long to) => Produce(servers, topic, Enumerable.Range((int)from, (int)(to - from)).Select(n => Click(n)));

    /// <summary>Every record of every partition of <paramref name="topic"/>, as (partition, offset, value).</summary>
    public static List<(int Partition, long Offset, string Value)> ReadAll(string servers, string topic)
    {
        var records = new List<(int, long, string)>();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).Build();
        var partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions.Select(p => p.PartitionId).ToList();
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = servers,
            GroupId = "test-reader-" + Guid.NewGuid().ToString("N"),
            EnablePartitionEof = true,
            IsolationLevel = IsolationLevel.ReadCommitted,
        }).Build();
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var done = new HashSet<int>();
        while (done.Count < partitions.Count)
        {
            var r = consumer.Consume(TimeSpan.FromSeconds(20)) ?? throw new TimeoutException($"reading '{topic}' stalled");
            if (r.IsPartitionEOF)
            {
                done.Add(r.Partition.Value);
                continue;
            }

            records.Add((r.Partition.Value, r.Offset.Value, Encoding.UTF8.GetString(r.Message.Value)));
        }

        return records;
    }

    /// <summary>The sample's output read back: per user the highest total, and every click timestamp seen.</summary>
    public static (Dictionary<string, long> Totals, HashSet<long> Clicks, int Records) ReadTotals(string servers, string topic)
    {
        var totals = new Dictionary<string, long>(StringComparer.Ordinal);
        var clicks = new HashSet<long>();
        var all = ReadAll(servers, topic);
        foreach (var (_, _, value) in all)
        {
            var f = value.Split(',');
            totals[f[0]] = Math.Max(totals.GetValueOrDefault(f[0]), long.Parse(f[1], CultureInfo.InvariantCulture));
            clicks.Add(long.Parse(f[2], CultureInfo.InvariantCulture));
        }

        return (totals, clicks, all.Count);
    }

    /// <summary>What the output must show for clicks [0, n): each user's number of human clicks, and the human clicks themselves.</summary>
    public static (Dictionary<string, long> Totals, HashSet<long> Clicks) Expected(long n)
    {
        var totals = new Dictionary<string, long>(StringComparer.Ordinal);
        var clicks = new HashSet<long>();
        for (long i = 0; i < n; i++)
        {
            if (!IsHuman(i)) continue;
            string user = Click(i).Split(',')[0];
            totals[user] = totals.GetValueOrDefault(user) + 1;
            clicks.Add(i);
        }

        return (totals, clicks);
    }

    public static KafkaSource<ClickEvent> Source(string servers, string topic, Action<string>? warnings = null, string? progressGroup = null) => new(new KafkaSourceOptions<ClickEvent>
    {
        BootstrapServers = servers,
        Topics = new[] { topic },
        Deserialize = m => ClickEvent.Parse(Encoding.UTF8.GetString(m.Value ?? Array.Empty<byte>())),
        ProgressGroupId = progressGroup,
        OnWarning = warnings,
        UnavailableTimeout = TimeSpan.FromSeconds(60),
    });

    public static KafkaSink<UserTotals> Sink(string servers, string topic, Action<string>? warnings = null, string? transactionalId = null) => new(new KafkaSinkOptions<UserTotals>
    {
        BootstrapServers = servers,
        Topic = topic,
        Serialize = t => new KafkaRecord(Encoding.UTF8.GetBytes(t.UserId), Encoding.UTF8.GetBytes(t.ToCsv())),
        TransactionalId = transactionalId,
        OnWarning = warnings,
        UnavailableTimeout = TimeSpan.FromSeconds(60),
        TransactionTimeout = TimeSpan.FromSeconds(20),
    });

    public static PipelineRunner Runner(string checkpoint, KafkaSource<ClickEvent> source, KafkaSink<UserTotals> sink, TriggerMode trigger = TriggerMode.AvailableNow, long cap = 500) =>
        new PipelineRunner(KafkaClicksPipeline.Definition, new PipelineRunnerOptions
            {
                CheckpointDirectory = checkpoint,
                Trigger = trigger,
                MaxRecordsPerPartition = cap,
                CheckpointInterval = 3,
                BatchInterval = TimeSpan.FromMilliseconds(100),
            })
            .BindSource(KafkaClicksPipeline.Clicks(), source)
            .BindSink(KafkaClicksPipeline.Totals(), sink);

    public static string TempDir()
    {
        string path = Path.Combine(Path.GetTempPath(), "pdsl-kafka-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }
}

/// <summary>Collects what a source emits.</summary>
internal sealed class CollectingOutput<T> : ISourceOutput<T>
{
    public List<(long Position, T Record)> Records { get; } = new();

    public List<(long Position, string Raw, Exception Error)> Rejected { get; } = new();

    public void Emit(long position, T record) => Records.Add((position, record));

    public void Reject(long position, string raw, Exception error) => Rejected.Add((position, raw, error));
}
