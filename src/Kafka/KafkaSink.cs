using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Confluent.Kafka;
using PipelineDsl.Sinks;

namespace PipelineDsl.Kafka;

/// <summary>
/// An exactly-once Kafka sink: one transaction per batch, on a transactional producer whose id is derived
/// from the pipeline id (so a restarted instance fences its zombie), and the batch id committed atomically
/// with the output, as the offset of a consumer group named like the transactional id (sent within the
/// transaction). When the runtime replays a batch after a crash, the sink reads that offset back and skips a
/// batch Kafka already has. Consumers of the output see each batch once with <c>isolation.level=read_committed</c>.
/// </summary>
/// <remarks>
/// librdkafka's mock cluster (the development broker) accepts the transaction calls but neither hides
/// aborted or open transactions from read_committed consumers nor applies offsets sent within a
/// transaction. On the mock a replayed batch is therefore written again (at-least-once, nothing lost);
/// exactly-once needs a real broker.
/// </remarks>
/// <typeparam name="T">The record type.</typeparam>
public sealed class KafkaSink<T> : ISinkConnector<T>, IConnectorContextAware, IDisposable
{
    private readonly KafkaSinkOptions<T> _options;
    private readonly Func<T, KafkaRecord> _serialize;
    private string? _transactionalId;
    private IProducer<byte[]?, byte[]?>? _producer;
    private IConsumer<byte[]?, byte[]?>? _progress;
    private long _lastCommittedBatch = -1;
    private Error? _deliveryError;
    private readonly Action<DeliveryReport<byte[]?, byte[]?>> _onDelivery;

    /// <summary>Creates the sink; the producer starts with the first batch.</summary>
    public KafkaSink(KafkaSinkOptions<T> options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (string.IsNullOrWhiteSpace(options.BootstrapServers))
            throw new ArgumentException("KafkaSinkOptions.BootstrapServers is empty: name the brokers, for example \"localhost:9092\".", nameof(options));
        if (string.IsNullOrWhiteSpace(options.Topic)) throw new ArgumentException("KafkaSinkOptions.Topic is empty: name the topic to write to.", nameof(options));
        _serialize = options.Serialize ?? throw new ArgumentException("KafkaSinkOptions.Serialize is null: give a function from the record type to KafkaRecord.", nameof(options));
        _transactionalId = options.TransactionalId;
        _onDelivery = report =>
        {
            if (report.Error.IsError) Interlocked.CompareExchange(ref _deliveryError, report.Error, null);
        };
    }

    private void AbortQuietly(IProducer<byte[]?, byte[]?> producer)
    {
        try
        {
            producer.AbortTransaction(_options.TransactionTimeout);
        }
        catch (KafkaException)
        {
            // The next instance's InitTransactions aborts it anyway.
        }
    }

    /// <summary>The transactional id in use (known once the run has started or when set in the options).</summary>
    public string? TransactionalId => _transactionalId;

    /// <summary>The newest batch this sink knows to be committed in Kafka (-1: none).</summary>
    public long LastCommittedBatch => _lastCommittedBatch;

    /// <summary>Batches skipped because Kafka already had them (replays after a crash).</summary>
    public long SkippedBatches { get; private set; }

    /// <inheritdoc />
    public void Attach(ConnectorContext context) => _transactionalId ??= $"pipelinedsl.{context.PipelineId}.{context.OperatorId}";

    /// <inheritdoc />
    public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken) =>
        Task.Run(() => Write(batchId, records, cancellationToken), cancellationToken);

    private void Write(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        var producer = Start(cancellationToken);
        if (batchId <= _lastCommittedBatch)
        {
            SkippedBatches++;
            _options.OnWarning?.Invoke($"Batch {batchId} is already committed to '{_options.Topic}' (transactional id {_transactionalId}); skipped.");
            return;
        }

        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                _deliveryError = null;
                producer.BeginTransaction();
                foreach (var record in records) Produce(producer, record, cancellationToken);
                // The batch id travels in the same transaction as the output: both are committed, or neither.
                producer.SendOffsetsToTransaction(new[] { new TopicPartitionOffset(_options.Topic, 0, batchId + 1) }, _progress!.ConsumerGroupMetadata, _options.TransactionTimeout);
                Commit(producer, clock, cancellationToken);
                _lastCommittedBatch = batchId;
                return;
            }
            catch (KafkaTxnRequiresAbortException e)
            {
                // A record the broker refused for good (authorization, size, …) would fail every retry: stop now.
                var refused = Interlocked.Exchange(ref _deliveryError, null);
                if (refused is not null && !KafkaErrors.IsTransient(refused))
                {
                    AbortQuietly(producer);
                    throw new KafkaConnectorException($"Kafka refused a record of batch {batchId} for topic '{_options.Topic}': {refused.Reason} ({refused.Code}). "
                                                      + "The batch is not committed and runs again on restart; fix the cause (for example the topic's ACLs or max.message.bytes) first.", e);
                }

                Abort(producer, batchId, e.Error, clock);
            }
            catch (KafkaRetriableException e)
            {
                Abort(producer, batchId, e.Error, clock);
            }
            catch (KafkaException e) when (e.Error.IsFatal || e.Error.Code is ErrorCode.ProducerFenced or ErrorCode.Local_Fenced or ErrorCode.InvalidProducerEpoch)
            {
                throw new KafkaConnectorException(
                    $"The Kafka producer for '{_options.Topic}' (transactional id {_transactionalId}) was fenced or failed fatally in batch {batchId}: {e.Error.Reason}. "
                    + "Another instance of this pipeline with the same transactional id has started; only one may run. This one stops; "
                    + "its batch runs again in whichever instance owns the checkpoint.", e);
            }
            catch (KafkaException e) when (!KafkaErrors.IsTransient(e.Error))
            {
                throw new KafkaConnectorException($"Kafka refused batch {batchId} for topic '{_options.Topic}': {e.Error.Reason} ({e.Error.Code}). "
                                                  + "The batch is not committed and runs again on restart.", e);
            }
            catch (KafkaException e)
            {
                Abort(producer, batchId, e.Error, clock);
            }
        }
    }

    private void Produce(IProducer<byte[]?, byte[]?> producer, T value, CancellationToken cancellationToken)
    {
        var record = _serialize(value);
        var message = new Message<byte[]?, byte[]?> { Key = record.Key, Value = record.Value };
        while (true)
        {
            try
            {
                if (record.Partition is { } p) producer.Produce(new TopicPartition(_options.Topic, p), message, _onDelivery);
                else producer.Produce(_options.Topic, message, _onDelivery);
                return;
            }
            catch (ProduceException<byte[]?, byte[]?> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                // The local queue is full: let librdkafka send some of it.
                cancellationToken.ThrowIfCancellationRequested();
                Thread.Sleep(1);
            }
        }
    }

    private void Commit(IProducer<byte[]?, byte[]?> producer, Stopwatch clock, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                producer.CommitTransaction(_options.TransactionTimeout);
                return;
            }
            catch (KafkaRetriableException e) when (clock.Elapsed < _options.UnavailableTimeout)
            {
                // A commit that timed out may be retried as is (librdkafka's contract).
                _options.OnWarning?.Invoke($"Retrying the commit of a transaction on '{_options.Topic}': {e.Error.Reason}");
                cancellationToken.ThrowIfCancellationRequested();
            }
        }
    }

    private void Abort(IProducer<byte[]?, byte[]?> producer, long batchId, Error error, Stopwatch clock)
    {
        if (clock.Elapsed > _options.UnavailableTimeout)
            throw new KafkaConnectorException($"Batch {batchId} could not be committed to '{_options.Topic}' for {_options.UnavailableTimeout}: {error.Reason}. "
                                              + "Are the brokers up? The batch is not committed and runs again on restart.");
        _options.OnWarning?.Invoke($"Batch {batchId}: transaction on '{_options.Topic}' aborted ({error.Reason}); writing the batch again.");
        while (true)
        {
            try
            {
                producer.AbortTransaction(_options.TransactionTimeout);
                return;
            }
            catch (KafkaException e) when (KafkaErrors.IsTransient(e.Error) || e is KafkaRetriableException)
            {
                if (clock.Elapsed > _options.UnavailableTimeout) throw;
                Thread.Sleep(200);
            }
            catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_State)
            {
                return; // no transaction in progress (it failed before it began)
            }
        }
    }

    private IProducer<byte[]?, byte[]?> Start(CancellationToken cancellationToken)
    {
        if (_producer is not null) return _producer;
        _transactionalId ??= $"pipelinedsl.{_options.Topic}";
        var config = new ProducerConfig
        {
            BootstrapServers = _options.BootstrapServers,
            TransactionalId = _transactionalId,
            EnableIdempotence = true,
            TransactionTimeoutMs = (int)_options.TransactionTimeout.TotalMilliseconds,
            LingerMs = 5,
            QueueBufferingMaxMessages = 1_000_000,
            QueueBufferingMaxKbytes = 1 << 20,
        };
        KafkaErrors.Apply(config, _options.ClientConfig);
        var producer = new ProducerBuilder<byte[]?, byte[]?>(config).SetLogHandler((_, _) => { }).Build();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // Fences any older producer with this transactional id and aborts its open transaction.
                producer.InitTransactions(_options.TransactionTimeout);
                break;
            }
            catch (KafkaException e) when ((e is KafkaRetriableException || KafkaErrors.IsTransient(e.Error)) && clock.Elapsed < _options.UnavailableTimeout)
            {
                _options.OnWarning?.Invoke($"Retrying the start of transactional producer {_transactionalId}: {e.Error.Reason}");
                cancellationToken.ThrowIfCancellationRequested();
                Thread.Sleep(500);
            }
            catch (KafkaException e)
            {
                producer.Dispose();
                throw new KafkaConnectorException($"The transactional producer {_transactionalId} for '{_options.Topic}' could not start: {e.Error.Reason} ({e.Error.Code}).", e);
            }
        }

        var consumerConfig = new ConsumerConfig
        {
            BootstrapServers = _options.BootstrapServers,
            GroupId = _transactionalId,
            EnableAutoCommit = false,
            IsolationLevel = IsolationLevel.ReadCommitted,
        };
        KafkaErrors.Apply(consumerConfig, _options.ClientConfig);
        _progress = new ConsumerBuilder<byte[]?, byte[]?>(consumerConfig).SetLogHandler((_, _) => { }).Build();
        _lastCommittedBatch = ReadCommittedBatch(cancellationToken);
        _producer = producer;
        return producer;
    }

    private long ReadCommittedBatch(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var committed = _progress!.Committed(new[] { new TopicPartition(_options.Topic, 0) }, TimeSpan.FromSeconds(10));
                long offset = committed.Count == 0 ? Offset.Unset.Value : committed[0].Offset.Value;
                return offset > 0 ? offset - 1 : -1;
            }
            catch (KafkaException e) when (KafkaErrors.IsTransient(e.Error) && clock.Elapsed < _options.UnavailableTimeout)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Thread.Sleep(500);
            }
        }
    }

    /// <summary>Closes the producer (an open transaction is aborted by the broker or by the next instance).</summary>
    public void Dispose()
    {
        _producer?.Dispose();
        _producer = null;
        _progress?.Dispose();
        _progress = null;
    }
}
