using System.Text;
using Confluent.Kafka;
using KafkaClicks;
using static PipelineDsl.Kafka.Tests.KafkaTestKit;

namespace PipelineDsl.Kafka.Tests;

/// <summary>
/// A test that needs what librdkafka's mock cluster does not emulate (transaction isolation for
/// read_committed consumers, offsets committed within a transaction, producer fencing, offsets by timestamp).
/// It runs against the broker named by KAFKA_BOOTSTRAP_SERVERS, and is reported as skipped, with the reason,
/// when that variable is not set: never as passed.
/// </summary>
public sealed class RealKafkaFactAttribute : FactAttribute
{
    public RealKafkaFactAttribute()
    {
        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("KAFKA_BOOTSTRAP_SERVERS")))
            Skip = "needs a real Kafka broker (set KAFKA_BOOTSTRAP_SERVERS): the mock cluster does not emulate transaction isolation, "
                   + "offsets sent within a transaction, producer fencing or offsets by timestamp";
    }
}

/// <summary>Exactly-once guarantees, against a real broker. Topics are created with the admin API.</summary>
public sealed class RealBrokerTests
{
    private static string Servers => Environment.GetEnvironmentVariable("KAFKA_BOOTSTRAP_SERVERS")!;

    private static string NewTopic(int partitions)
    {
        string name = "pdsl-test-" + Guid.NewGuid().ToString("N");
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = Servers }).Build();
        admin.CreateTopicsAsync(new[] { new Confluent.Kafka.Admin.TopicSpecification { Name = name, NumPartitions = partitions, ReplicationFactor = 1 } }).GetAwaiter().GetResult();
        return name;
    }

    [RealKafkaFact]
    public async Task A_replayed_batch_is_not_written_twice()
    {
        string topic = NewTopic(1);
        string id = "eos-" + Guid.NewGuid().ToString("N");
        using (var first = Sink(Servers, topic, transactionalId: id))
            await first.WriteBatchAsync(0, new[] { new UserTotals("a", 1, 1) }, CancellationToken.None);

        // A restarted instance is asked for batch 0 again (its commit file was lost), then batch 1.
        using var restarted = Sink(Servers, topic, transactionalId: id);
        await restarted.WriteBatchAsync(0, new[] { new UserTotals("a", 1, 1) }, CancellationToken.None);
        await restarted.WriteBatchAsync(1, new[] { new UserTotals("a", 2, 2) }, CancellationToken.None);

        Assert.Equal(1, restarted.SkippedBatches);
        Assert.Equal(new[] { "a,1,1", "a,2,2" }, ReadAll(Servers, topic).Select(r => r.Value));
    }

    [RealKafkaFact]
    public async Task A_zombie_instance_is_fenced_and_its_batch_never_becomes_visible()
    {
        string topic = NewTopic(1);
        string id = "fence-" + Guid.NewGuid().ToString("N");
        using var zombie = Sink(Servers, topic, transactionalId: id);
        await zombie.WriteBatchAsync(0, new[] { new UserTotals("a", 1, 1) }, CancellationToken.None);
        using var successor = Sink(Servers, topic, transactionalId: id);
        await successor.WriteBatchAsync(1, new[] { new UserTotals("a", 2, 2) }, CancellationToken.None);

        var e = await Assert.ThrowsAsync<KafkaConnectorException>(() => zombie.WriteBatchAsync(2, new[] { new UserTotals("a", 3, 3) }, CancellationToken.None));

        Assert.Contains("fenced", e.Message);
        Assert.Equal(new[] { "a,1,1", "a,2,2" }, ReadAll(Servers, topic).Select(r => r.Value));
    }

    [RealKafkaFact]
    public async Task Records_of_an_aborted_transaction_are_never_read_by_the_source()
    {
        string topic = NewTopic(1);
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = Servers, TransactionalId = "abort-" + topic }).Build())
        {
            producer.InitTransactions(TimeSpan.FromSeconds(30));
            producer.BeginTransaction();
            producer.Produce(topic, new Message<byte[], byte[]> { Value = Encoding.UTF8.GetBytes(Click(0)) });
            producer.AbortTransaction(TimeSpan.FromSeconds(30));
            producer.BeginTransaction();
            producer.Produce(topic, new Message<byte[], byte[]> { Value = Encoding.UTF8.GetBytes(Click(1)) });
            producer.CommitTransaction(TimeSpan.FromSeconds(30));
        }

        using var source = Source(Servers, topic);
        long end = await source.GetEndPositionAsync(topic + ":0", CancellationToken.None);
        var output = new CollectingOutput<ClickEvent>();
        await source.ReadAsync(topic + ":0", 0, end, output, CancellationToken.None);

        Assert.Equal(new long[] { 1 }, output.Records.Select(r => r.Record.TimestampMs));
    }

    [RealKafkaFact]
    public async Task Source_starts_at_the_first_record_at_or_after_a_timestamp()
    {
        string topic = NewTopic(1);
        var t0 = DateTimeOffset.UtcNow.AddHours(-1);
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = Servers }).Build())
        {
            for (int i = 0; i < 10; i++)
                producer.Produce(topic, new Message<byte[], byte[]> { Value = Encoding.UTF8.GetBytes(Click(i)), Timestamp = new Timestamp(t0.AddMinutes(i)) });
            producer.Flush(TimeSpan.FromSeconds(30));
        }

        using var source = new KafkaSource<ClickEvent>(new KafkaSourceOptions<ClickEvent>
        {
            BootstrapServers = Servers,
            Topics = new[] { topic },
            Deserialize = m => ClickEvent.Parse(Encoding.UTF8.GetString(m.Value!)),
            StartingOffsets = KafkaStartingOffsets.At(t0.AddMinutes(6).AddSeconds(-1)),
        });

        Assert.Equal(6, await source.GetInitialPositionAsync(topic + ":0", partitionIsNew: false, CancellationToken.None));
    }
}
