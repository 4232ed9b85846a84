using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Confluent.Kafka;
using PipelineDsl.Sources;

namespace PipelineDsl.Kafka;

/// <summary>
/// A direct Kafka source in the style of Spark's direct Kafka API: every partition of the configured topics
/// is <em>assigned</em> (never subscribed), the runtime plans each batch's offset range per partition and
/// logs it in the checkpoint before processing, and a replay reads exactly that range again. The checkpoint,
/// not a consumer group, is the truth. Partitions are named <c>topic:partition</c>; positions are offsets.
/// Consumers use <c>isolation.level=read_committed</c>, so transactional input is read once committed.
/// </summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class KafkaSource<T> : ISourceConnector<T>, ISourceCommitListener, IDisposable
{
    private readonly KafkaSourceOptions<T> _options;
    private readonly Func<KafkaMessage, T> _deserialize;
    private readonly ConcurrentBag<IConsumer<byte[]?, byte[]?>> _idle = new();
    private readonly Lazy<IConsumer<byte[]?, byte[]?>> _metadata;
    private readonly Lazy<IAdminClient> _admin;
    private readonly Lazy<IConsumer<byte[]?, byte[]?>?> _progress;
    private bool _disposed;

    /// <summary>Creates the source; nothing connects until the runner asks for partitions.</summary>
    public KafkaSource(KafkaSourceOptions<T> options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (string.IsNullOrWhiteSpace(options.BootstrapServers))
            throw new ArgumentException("KafkaSourceOptions.BootstrapServers is empty: name the brokers, for example \"localhost:9092\".", nameof(options));
        if (options.Topics is null || options.Topics.Count == 0 || options.Topics.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException("KafkaSourceOptions.Topics must name at least one topic, none of them empty.", nameof(options));
        _deserialize = options.Deserialize
            ?? throw new ArgumentException("KafkaSourceOptions.Deserialize is null: give a function from KafkaMessage to the record type.", nameof(options));
        _metadata = new Lazy<IConsumer<byte[]?, byte[]?>>(() => NewConsumer(groupId: null));
        _admin = new Lazy<IAdminClient>(() => new AdminClientBuilder(Config(new AdminClientConfig())).Build());
        _progress = new Lazy<IConsumer<byte[]?, byte[]?>?>(() => options.ProgressGroupId is null ? null : NewConsumer(options.ProgressGroupId));
    }

    /// <inheritdoc />
    public string Description => $"kafka {string.Join(",", _options.Topics)} at {_options.BootstrapServers}";

    /// <summary>The partition name the source uses for <paramref name="topic"/> and <paramref name="partition"/>.</summary>
    public static string PartitionName(string topic, int partition) => topic + ":" + partition.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) => Task.Run(() =>
    {
        var names = new List<string>();
        foreach (string topic in _options.Topics)
        {
            var metadata = Retry($"reading the metadata of topic '{topic}'", () => _admin.Value.GetMetadata(topic, TimeSpan.FromSeconds(10)), cancellationToken);
            var entry = metadata.Topics.SingleOrDefault(t => t.Topic == topic);
            if (entry is null || entry.Error.Code == ErrorCode.UnknownTopicOrPart || entry.Partitions.Count == 0)
                throw new KafkaConnectorException($"Kafka topic '{topic}' does not exist at {_options.BootstrapServers}. Create it, or fix KafkaSourceOptions.Topics.");
            if (entry.Error.IsError && !KafkaErrors.IsTransient(entry.Error))
                throw new KafkaConnectorException($"Kafka refused the metadata of topic '{topic}': {entry.Error.Reason} ({entry.Error.Code}).");
            names.AddRange(entry.Partitions.Select(p => p.PartitionId).OrderBy(p => p).Select(p => PartitionName(topic, p)));
        }

        return (IReadOnlyList<string>)names;
    }, cancellationToken);

    /// <inheritdoc />
    public Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) => Task.Run(() =>
    {
        var tp = Parse(partition);
        var start = partitionIsNew ? KafkaStartingOffsets.Earliest : _options.StartingOffsets;
        var marks = Watermarks(tp, cancellationToken);
        switch (start.Kind)
        {
            case "earliest":
                return marks.Low.Value;
            case "latest":
                return marks.High.Value;
            default:
                var found = Retry($"looking up the offset of {start} in {partition}",
                    () => _metadata.Value.OffsetsForTimes(new[] { new TopicPartitionTimestamp(tp, new Timestamp(start.Timestamp!.Value)) }, TimeSpan.FromSeconds(10)),
                    cancellationToken);
                long offset = found[0].Offset.Value;
                return offset < 0 ? marks.High.Value : Math.Max(offset, marks.Low.Value); // no record that late: start at the end
        }
    }, cancellationToken);

    /// <inheritdoc />
    public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken) =>
        Task.Run(() => Watermarks(Parse(partition), cancellationToken).High.Value, cancellationToken);

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
        Task.FromResult(Math.Min(available, from + maxRecords));

    /// <inheritdoc />
    public Task ReadAsync(string partition, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken)
    {
        if (to <= from) return Task.CompletedTask;
        return Task.Run(() => Read(Parse(partition), partition, from, to, output, cancellationToken), cancellationToken);
    }

    private void Read(TopicPartition tp, string name, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken)
    {
        if (!_idle.TryTake(out var consumer)) consumer = NewConsumer(groupId: null);
        try
        {
            consumer.Assign(new TopicPartitionOffset(tp, from));
            var stalled = Stopwatch.StartNew();
            var lastWarning = TimeSpan.Zero; // one warning per 5 s of stalling, not one per poll
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ConsumeResult<byte[]?, byte[]?>? result;
                try
                {
                    result = consumer.Consume(TimeSpan.FromMilliseconds(500));
                }
                catch (ConsumeException e) when (e.Error.Code == ErrorCode.OffsetOutOfRange)
                {
                    var marks = Watermarks(tp, cancellationToken);
                    throw new KafkaConnectorException(
                        $"Offsets [{from}, {to}) of {name} are no longer in Kafka (the partition now starts at {marks.Low.Value}): retention deleted "
                        + "them before the pipeline could read them. Those records are lost to this checkpoint; raise the topic's retention, "
                        + "or start a new checkpoint.", e);
                }
                catch (ConsumeException e) when (KafkaErrors.IsTransient(e.Error))
                {
                    result = null;
                }

                if (result is null)
                {
                    // librdkafka reconnects by itself; the range is in the offset log, so waiting loses nothing.
                    if (stalled.Elapsed > _options.UnavailableTimeout)
                        throw new KafkaConnectorException($"Reading offsets [{from}, {to}) of {name} made no progress for {_options.UnavailableTimeout}: "
                                                          + $"are the brokers at {_options.BootstrapServers} up? The batch runs again on restart.");
                    if (stalled.Elapsed - lastWarning > TimeSpan.FromSeconds(5))
                    {
                        lastWarning = stalled.Elapsed;
                        _options.OnWarning?.Invoke($"Waiting for {name} at offset {consumer.Position(tp).Value} (reading up to {to}); broker unreachable?");
                    }

                    continue;
                }

                stalled.Restart();
                lastWarning = TimeSpan.Zero;
                if (result.IsPartitionEOF)
                {
                    // Offsets up to the end can be transaction markers or aborted records, which hold offsets but no data.
                    if (result.Offset.Value >= to) return;
                    continue;
                }

                long offset = result.Offset.Value;
                if (offset >= to) return;
                var message = result.Message;
                try
                {
                    output.Emit(offset, _deserialize(new KafkaMessage(tp.Topic, tp.Partition.Value, offset, message.Key, message.Value, message.Timestamp.UtcDateTime)));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    output.Reject(offset, Preview(message.Value), e);
                }

                if (offset + 1 >= to) return;
            }
        }
        finally
        {
            consumer.Unassign();
            _idle.Add(consumer);
        }
    }

    /// <summary>Publishes committed positions to <see cref="KafkaSourceOptions{T}.ProgressGroupId"/>, if set.</summary>
    public Task OnBatchCommittedAsync(long batchId, IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken)
    {
        var consumer = _progress.Value;
        if (consumer is null || positions.Count == 0) return Task.CompletedTask;
        return Task.Run(() =>
        {
            var offsets = positions.Select(p => new TopicPartitionOffset(Parse(p.Key), p.Value)).ToList();
            try
            {
                consumer.Commit(offsets);
            }
            catch (KafkaException e)
            {
                _options.OnWarning?.Invoke($"Could not publish the positions of batch {batchId} to consumer group '{_options.ProgressGroupId}': {e.Error.Reason} (informational only).");
            }
        }, cancellationToken);
    }

    /// <summary>Closes the source's Kafka clients.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        while (_idle.TryTake(out var consumer)) consumer.Dispose();
        if (_metadata.IsValueCreated) _metadata.Value.Dispose();
        if (_admin.IsValueCreated) _admin.Value.Dispose();
        if (_progress.IsValueCreated) _progress.Value?.Dispose();
    }

    private WatermarkOffsets Watermarks(TopicPartition tp, CancellationToken cancellationToken) =>
        Retry($"reading the offsets of {PartitionName(tp.Topic, tp.Partition.Value)}", () => _metadata.Value.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)), cancellationToken);

    private TResult Retry<TResult>(string what, Func<TResult> call, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                return call();
            }
            catch (KafkaException e) when (KafkaErrors.IsTransient(e.Error))
            {
                if (clock.Elapsed > _options.UnavailableTimeout)
                    throw new KafkaConnectorException($"Kafka at {_options.BootstrapServers} was unreachable for {_options.UnavailableTimeout} while {what}: {e.Error.Reason}. "
                                                      + "Check that the brokers are up; the pipeline resumes from its checkpoint when restarted.", e);
                _options.OnWarning?.Invoke($"Retrying {what}: {e.Error.Reason}");
                cancellationToken.WaitHandle.WaitOne(delay);
                cancellationToken.ThrowIfCancellationRequested();
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 2000));
            }
            catch (KafkaException e)
            {
                throw new KafkaConnectorException($"Kafka refused {what}: {e.Error.Reason} ({e.Error.Code}).", e);
            }
        }
    }

    private IConsumer<byte[]?, byte[]?> NewConsumer(string? groupId)
    {
        var config = Config(new ConsumerConfig
        {
            // A group id is required by the client even for assigned partitions; nothing is committed to it.
            GroupId = groupId ?? "pipelinedsl-direct-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Error,
            IsolationLevel = IsolationLevel.ReadCommitted,
            FetchWaitMaxMs = 10,
        });
        return new ConsumerBuilder<byte[]?, byte[]?>(config).SetLogHandler((_, _) => { }).Build();
    }

    private TConfig Config<TConfig>(TConfig config) where TConfig : ClientConfig
    {
        config.BootstrapServers = _options.BootstrapServers;
        KafkaErrors.Apply(config, _options.ClientConfig);
        return config;
    }

    private TopicPartition Parse(string partition)
    {
        int colon = partition.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(partition.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int number))
            throw new ArgumentException($"'{partition}' is not a Kafka partition name of the form topic:partition.", nameof(partition));
        return new TopicPartition(partition[..colon], new Partition(number));
    }

    private static string Preview(byte[]? value)
    {
        if (value is null) return "(null)";
        string text = Encoding.UTF8.GetString(value, 0, Math.Min(value.Length, 400));
        return text;
    }
}
