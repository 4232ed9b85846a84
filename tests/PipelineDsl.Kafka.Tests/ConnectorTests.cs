using PipelineDsl.Kafka.Testing;
using System.Text;
using Confluent.Kafka;
using KafkaClicks;
using PipelineDsl.Sources;
using static PipelineDsl.Kafka.Tests.KafkaTestKit;

namespace PipelineDsl.Kafka.Tests;

/// <summary>The source and sink on their own, against librdkafka's mock cluster in this process.</summary>
public sealed class ConnectorTests : IDisposable
{
    private readonly KafkaMockCluster _cluster = new(brokers: 1);

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task Source_lists_assigned_partitions_and_reads_exactly_a_planned_range_again_on_replay()
    {
        _cluster.CreateTopic("in", 2);
        Produce(_cluster.BootstrapServers, "in", Enumerable.Range(0, 200).Select(n => Click(n)));
        using var source = Source(_cluster.BootstrapServers, "in");

        var partitions = await source.ListPartitionsAsync(CancellationToken.None);
        Assert.Equal(new[] { "in:0", "in:1" }, partitions);
        long end0 = await source.GetEndPositionAsync("in:0", CancellationToken.None);
        long end1 = await source.GetEndPositionAsync("in:1", CancellationToken.None);
        Assert.Equal(200, end0 + end1);

        var first = new CollectingOutput<ClickEvent>();
        await source.ReadAsync("in:0", 10, 30, first, CancellationToken.None);
        var replay = new CollectingOutput<ClickEvent>();
        await source.ReadAsync("in:0", 10, 30, replay, CancellationToken.None);

        Assert.Equal(Enumerable.Range(10, 20).Select(i => (long)i), first.Records.Select(r => r.Position));
        Assert.Equal(first.Records, replay.Records);
        // What partition 0 holds at offsets 10..29, read independently.
        var direct = ReadAll(_cluster.BootstrapServers, "in").Where(r => r.Partition == 0 && r.Offset is >= 10 and < 30).Select(r => r.Value).ToList();
        Assert.Equal(direct, first.Records.Select(r => $"{r.Record.UserId},{r.Record.Url},{r.Record.TimestampMs},{(r.Record.IsBot ? 1 : 0)}"));
    }

    [Fact]
    public async Task Source_starts_at_earliest_or_latest_and_a_partition_new_to_the_checkpoint_at_earliest()
    {
        _cluster.CreateTopic("in", 1);
        ProduceClicks(_cluster.BootstrapServers, "in", 0, 25);
        using var earliest = Source(_cluster.BootstrapServers, "in");
        using var latest = new KafkaSource<ClickEvent>(new KafkaSourceOptions<ClickEvent>
        {
            BootstrapServers = _cluster.BootstrapServers,
            Topics = new[] { "in" },
            Deserialize = m => ClickEvent.Parse(Encoding.UTF8.GetString(m.Value!)),
            StartingOffsets = KafkaStartingOffsets.Latest,
        });

        Assert.Equal(0, await earliest.GetInitialPositionAsync("in:0", partitionIsNew: false, CancellationToken.None));
        Assert.Equal(25, await latest.GetInitialPositionAsync("in:0", partitionIsNew: false, CancellationToken.None));
        Assert.Equal(0, await latest.GetInitialPositionAsync("in:0", partitionIsNew: true, CancellationToken.None));
    }

    [Fact]
    public async Task Source_hands_an_undecodable_record_to_the_bad_record_policy_with_its_offset()
    {
        _cluster.CreateTopic("in", 1);
        Produce(_cluster.BootstrapServers, "in", new[] { Click(0), "user-01,not-a-click", Click(2) });
        using var source = Source(_cluster.BootstrapServers, "in");
        var output = new CollectingOutput<ClickEvent>();

        await source.ReadAsync("in:0", 0, 3, output, CancellationToken.None);

        Assert.Equal(new long[] { 0, 2 }, output.Records.Select(r => r.Position));
        var (position, raw, error) = Assert.Single(output.Rejected);
        Assert.Equal(1, position);
        Assert.Equal("user-01,not-a-click", raw);
        Assert.IsType<FormatException>(error);
    }

    [Fact]
    public async Task Pipeline_fails_on_a_bad_record_naming_source_topic_partition_and_offset()
    {
        _cluster.CreateTopic("in", 1);
        _cluster.CreateTopic("out", 1);
        Produce(_cluster.BootstrapServers, "in", new[] { Click(0), Click(1), "user-01,/x,yesterday,0" });
        using var source = Source(_cluster.BootstrapServers, "in");
        using var sink = Sink(_cluster.BootstrapServers, "out");

        var e = await Assert.ThrowsAsync<BadRecordException>(() => Runner(TempDir(), source, sink).RunAsync());

        Assert.Contains("Source 'clicks', partition 'in:0', position 2", e.Message);
        Assert.Contains("yesterday", e.Message);
    }

    [Fact]
    public void Source_rejects_incomplete_options_with_the_option_named()
    {
        var e = Assert.Throws<ArgumentException>(() => new KafkaSource<ClickEvent>(new KafkaSourceOptions<ClickEvent> { BootstrapServers = "x:1", Deserialize = _ => null! }));
        Assert.Contains("KafkaSourceOptions.Topics", e.Message);
        e = Assert.Throws<ArgumentException>(() => new KafkaSink<UserTotals>(new KafkaSinkOptions<UserTotals> { BootstrapServers = "x:1", Topic = "t" }));
        Assert.Contains("KafkaSinkOptions.Serialize", e.Message);
    }

    [Fact]
    public async Task Sink_commits_one_transaction_per_batch_under_a_transactional_id_derived_from_the_pipeline()
    {
        _cluster.CreateTopic("out", 2);
        using var sink = Sink(_cluster.BootstrapServers, "out");
        ((IConnectorContextAware)sink).Attach(new ConnectorContext("my-pipeline", "totals"));

        await sink.WriteBatchAsync(0, new[] { new UserTotals("a", 1, 10), new UserTotals("b", 1, 11) }, CancellationToken.None);
        await sink.WriteBatchAsync(1, new[] { new UserTotals("a", 2, 12) }, CancellationToken.None);

        Assert.Equal("pipelinedsl.my-pipeline.totals", sink.TransactionalId);
        Assert.Equal(1, sink.LastCommittedBatch);
        Assert.Equal(new[] { "a,1,10", "a,2,12", "b,1,11" }, ReadAll(_cluster.BootstrapServers, "out").Select(r => r.Value).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Sink_fails_with_a_clear_message_when_the_broker_refuses_records_for_good()
    {
        _cluster.CreateTopic("out", 1);
        using var sink = Sink(_cluster.BootstrapServers, "out", transactionalId: "refused-test");
        await sink.WriteBatchAsync(0, new[] { new UserTotals("a", 1, 1) }, CancellationToken.None); // the producer is up
        _cluster.PushRequestErrors(KafkaApi.Produce, Enumerable.Repeat(ErrorCode.TopicAuthorizationFailed, 10).ToArray());

        var e = await Assert.ThrowsAsync<KafkaConnectorException>(() => sink.WriteBatchAsync(1, new[] { new UserTotals("a", 2, 2) }, CancellationToken.None));

        Assert.Contains("batch 1", e.Message);
        Assert.Contains("'out'", e.Message);
        Assert.Contains("TopicAuthorizationFailed", e.Message);
    }

    [Fact]
    public async Task Source_publishes_committed_positions_to_its_progress_group_for_lag_tools()
    {
        _cluster.CreateTopic("in", 2);
        _cluster.CreateTopic("out", 2);
        ProduceClicks(_cluster.BootstrapServers, "in", 0, 300);
        using var source = Source(_cluster.BootstrapServers, "in", progressGroup: "lag-visible");
        using var sink = Sink(_cluster.BootstrapServers, "out");

        await Runner(TempDir(), source, sink).RunAsync();

        using var reader = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "lag-visible" }).Build();
        var committed = reader.Committed(new[] { new TopicPartition("in", 0), new TopicPartition("in", 1) }, TimeSpan.FromSeconds(10));
        Assert.Equal(300, committed.Sum(c => c.Offset.Value));
    }
}
