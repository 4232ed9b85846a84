using System;
using System.Collections.Generic;
using Confluent.Kafka;

namespace PipelineDsl.Kafka;

/// <summary>A record read from Kafka, handed to a source's deserializer.</summary>
/// <param name="Topic">The topic.</param>
/// <param name="Partition">The partition.</param>
/// <param name="Offset">The record's offset (its position in the checkpoint).</param>
/// <param name="Key">The key bytes, or null.</param>
/// <param name="Value">The value bytes, or null (a tombstone).</param>
/// <param name="Timestamp">The record's timestamp.</param>
public readonly record struct KafkaMessage(string Topic, int Partition, long Offset, byte[]? Key, byte[]? Value, DateTimeOffset Timestamp);

/// <summary>A record to write to Kafka: key, value and, optionally, a fixed partition (otherwise the key decides).</summary>
/// <param name="Key">The key bytes, or null.</param>
/// <param name="Value">The value bytes, or null (a tombstone).</param>
/// <param name="Partition">A fixed partition, or null to let the producer's partitioner choose by key.</param>
public readonly record struct KafkaRecord(byte[]? Key, byte[]? Value, int? Partition = null);

/// <summary>Where a Kafka source starts in a partition the checkpoint has never seen.</summary>
public sealed class KafkaStartingOffsets
{
    private KafkaStartingOffsets(string kind, DateTimeOffset? timestamp)
    {
        Kind = kind;
        Timestamp = timestamp;
    }

    /// <summary>The oldest offset still in the partition.</summary>
    public static KafkaStartingOffsets Earliest { get; } = new("earliest", null);

    /// <summary>The end of the partition when the checkpoint is created: only newer records are read.</summary>
    public static KafkaStartingOffsets Latest { get; } = new("latest", null);

    /// <summary>The first record whose timestamp is at or after <paramref name="timestamp"/> (the end if there is none).</summary>
    public static KafkaStartingOffsets At(DateTimeOffset timestamp) => new("timestamp", timestamp);

    internal string Kind { get; }

    internal DateTimeOffset? Timestamp { get; }

    /// <inheritdoc />
    public override string ToString() => Timestamp is { } t ? $"timestamp {t:O}" : Kind;
}

/// <summary>Options of <see cref="KafkaSource{T}"/>.</summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class KafkaSourceOptions<T>
{
    /// <summary>The brokers, for example <c>localhost:9092</c>.</summary>
    public string BootstrapServers { get; set; } = "";

    /// <summary>The topics to read; every partition of each is assigned (new partitions are picked up as they appear).</summary>
    public IReadOnlyList<string> Topics { get; set; } = Array.Empty<string>();

    /// <summary>Turns a Kafka record into a pipeline record. An exception marks the record as bad (see the pipeline's bad-record policy).</summary>
    public Func<KafkaMessage, T>? Deserialize { get; set; }

    /// <summary>Where a new checkpoint starts in each partition (default earliest). Partitions that appear later start at their earliest offset.</summary>
    public KafkaStartingOffsets StartingOffsets { get; set; } = KafkaStartingOffsets.Earliest;

    /// <summary>
    /// A consumer group to which each committed batch's positions are also written, so that lag tools see
    /// the pipeline's progress. Never read back: the checkpoint is the truth. Null (the default) writes none.
    /// </summary>
    public string? ProgressGroupId { get; set; }

    /// <summary>How long the brokers may be unreachable before the source gives up with an error (default 5 minutes).</summary>
    public TimeSpan UnavailableTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Extra librdkafka consumer settings (for example security settings), applied last.</summary>
    public IDictionary<string, string>? ClientConfig { get; set; }

    /// <summary>Receives warnings such as "broker unreachable, retrying"; null ignores them.</summary>
    public Action<string>? OnWarning { get; set; }
}

/// <summary>Options of <see cref="KafkaSink{T}"/>.</summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class KafkaSinkOptions<T>
{
    /// <summary>The brokers, for example <c>localhost:9092</c>.</summary>
    public string BootstrapServers { get; set; } = "";

    /// <summary>The topic written to.</summary>
    public string Topic { get; set; } = "";

    /// <summary>Turns a pipeline record into a Kafka record.</summary>
    public Func<T, KafkaRecord>? Serialize { get; set; }

    /// <summary>
    /// The transactional id. Default: <c>pipelinedsl.&lt;pipeline id&gt;.&lt;sink id&gt;</c>, derived when the run starts,
    /// so that a restarted instance of the same pipeline fences the previous one (a zombie cannot commit).
    /// Set it when several instances of one pipeline run side by side on different checkpoints.
    /// </summary>
    public string? TransactionalId { get; set; }

    /// <summary>The transaction timeout (default 60 s); a batch's transaction must commit within it.</summary>
    public TimeSpan TransactionTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a batch may keep failing with retriable errors (broker down) before the sink gives up (default 5 minutes).</summary>
    public TimeSpan UnavailableTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Extra librdkafka producer settings, applied last.</summary>
    public IDictionary<string, string>? ClientConfig { get; set; }

    /// <summary>Receives warnings such as "transaction aborted, retrying batch"; null ignores them.</summary>
    public Action<string>? OnWarning { get; set; }
}

/// <summary>A Kafka error the connector cannot retry, with what it was doing and what to do.</summary>
public sealed class KafkaConnectorException : PipelineDslException
{
    /// <summary>Creates the exception.</summary>
    public KafkaConnectorException(string message, Exception? inner = null) : base(message, inner)
    {
    }

    /// <inheritdoc />
    public override bool IsTransient => false;
}

internal static class KafkaErrors
{
    /// <summary>Errors that mean "not now": the broker is down, moving or electing; wait and retry.</summary>
    public static bool IsTransient(Error error) =>
        error.IsLocalError && error.Code is ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown or ErrorCode.Local_TimedOut
            or ErrorCode.Local_TimedOutQueue or ErrorCode.Local_WaitCache or ErrorCode.Local_Retry or ErrorCode.Local_UnknownPartition
        || error.Code is ErrorCode.LeaderNotAvailable or ErrorCode.NotLeaderForPartition or ErrorCode.RequestTimedOut
            or ErrorCode.NetworkException or ErrorCode.BrokerNotAvailable or ErrorCode.NotCoordinatorForGroup
            or ErrorCode.GroupLoadInProgress or ErrorCode.GroupCoordinatorNotAvailable or ErrorCode.NotEnoughReplicas
            or ErrorCode.NotEnoughReplicasAfterAppend or ErrorCode.ConcurrentTransactions or ErrorCode.FencedLeaderEpoch
            or ErrorCode.UnknownLeaderEpoch or ErrorCode.OffsetNotAvailable or ErrorCode.KafkaStorageError;

    /// <summary>The settings every client of the connectors gets, then the user's extra settings (which win).</summary>
    public static void Apply(ClientConfig config, IDictionary<string, string>? extra)
    {
        // librdkafka 2.10+ "re-bootstraps" when every broker it knows is down (KIP-899): it decommissions the
        // brokers and starts over from bootstrap.servers. In 2.16.0 a transactional producer's decommissioned
        // coordinator handle never terminates, and every transactional call after that blocks past its timeout
        // (seen on the mock cluster: a 4 s outage of its only broker hung SendOffsetsToTransaction for minutes).
        // Without re-bootstrap the clients reconnect to the same brokers when they return, which is what this
        // connector needs; a cluster whose every address changes needs new bootstrap servers anyway.
        config.Set("metadata.recovery.strategy", "none");
        if (extra is null) return;
        foreach (var (key, value) in extra) config.Set(key, value);
    }
}
