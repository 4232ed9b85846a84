using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;

namespace PipelineDsl.Kafka.Testing;

/// <summary>
/// librdkafka's mock cluster: real Kafka protocol on loopback TCP, in this process, for tests, samples and
/// development. It is not a production broker: it keeps about 5 MiB per partition, does not hide aborted or
/// open transactions from read_committed consumers, does not apply offsets sent within a transaction, and
/// cannot create topics through the admin API (use <see cref="CreateTopic"/>). It runs on the librdkafka that
/// Confluent.Kafka loaded from the librdkafka.redist package, never on another copy found on the system.
/// </summary>
public sealed class KafkaMockCluster : IDisposable
{
    private readonly MockClusterHandle _cluster;

    /// <summary>Starts a cluster of <paramref name="brokers"/> brokers (ids 1 … n) on loopback ports chosen by the OS.</summary>
    public KafkaMockCluster(int brokers = 1)
    {
        if (brokers < 1) throw new ArgumentOutOfRangeException(nameof(brokers), "A mock cluster needs at least one broker.");
        KafkaTestingNative.EnsureLoaded();
        var errors = new StringBuilder(512);
        IntPtr conf = Native.rd_kafka_conf_new();
        // The mock cluster needs a client handle to live in; a producer with no bootstrap servers never connects anywhere.
        Native.rd_kafka_conf_set(conf, "log_level", "3", errors, (UIntPtr)errors.Capacity);
        // rd_kafka_new takes ownership of conf, also when it fails.
        var client = Native.rd_kafka_new(0 /* RD_KAFKA_PRODUCER */, conf, errors, (UIntPtr)errors.Capacity);
        if (client.IsInvalid)
        {
            client.Dispose();
            throw new InvalidOperationException($"librdkafka could not create a client for the mock cluster: {errors}");
        }

        var cluster = MockClusterHandle.Create(client, brokers);
        if (cluster is null)
        {
            client.Dispose();
            throw new InvalidOperationException($"librdkafka could not start a mock cluster (the library loaded from {KafkaTestingNative.LoadedPath ?? "the system"} lacks it; it needs librdkafka 2.1 or later).");
        }

        _cluster = cluster;
        BootstrapServers = Marshal.PtrToStringAnsi(Native.rd_kafka_mock_cluster_bootstraps(_cluster))!;
        Brokers = brokers;
        // Consumer groups join at once instead of after the 3 s a real broker waits for more members.
        Native.rd_kafka_mock_group_initial_rebalance_delay_ms(_cluster, 0);
    }

    /// <summary>The cluster's bootstrap servers, for example <c>127.0.0.1:40123,127.0.0.1:40125</c>.</summary>
    public string BootstrapServers { get; }

    /// <summary>The number of brokers (ids 1 … <see cref="Brokers"/>).</summary>
    public int Brokers { get; }

    /// <summary>Creates a topic (the mock has no CreateTopics API).</summary>
    public void CreateTopic(string topic, int partitions, int replicationFactor = 1)
    {
        if (string.IsNullOrWhiteSpace(topic)) throw new ArgumentException("A topic name is needed.", nameof(topic));
        if (partitions < 1) throw new ArgumentOutOfRangeException(nameof(partitions), "A topic needs at least one partition.");
        Check(Native.rd_kafka_mock_topic_create(Cluster, topic, partitions, Math.Min(replicationFactor, Brokers)), $"create topic '{topic}'");
    }

    /// <summary>Takes broker <paramref name="brokerId"/> down: its connections close and new ones are refused until <see cref="SetBrokerUp"/>.</summary>
    public void SetBrokerDown(int brokerId) => Check(Native.rd_kafka_mock_broker_set_down(Cluster, brokerId), $"take broker {brokerId} down");

    /// <summary>Brings broker <paramref name="brokerId"/> back up.</summary>
    public void SetBrokerUp(int brokerId) => Check(Native.rd_kafka_mock_broker_set_up(Cluster, brokerId), $"bring broker {brokerId} up");

    /// <summary>Makes the next requests of kind <paramref name="api"/> fail, one error per request, in order.</summary>
    public void PushRequestErrors(KafkaApi api, params ErrorCode[] errors)
    {
        var codes = Array.ConvertAll(errors, e => (int)e);
        Native.rd_kafka_mock_push_request_errors_array(Cluster, (short)api, (UIntPtr)codes.Length, codes);
    }

    /// <summary>Stops the cluster; clients connected to it see their connections close.</summary>
    public void Dispose() => _cluster.Dispose();

    /// <summary>The version string of the librdkafka the mock cluster's functions are bound to.</summary>
    internal static string NativeVersion
    {
        get
        {
            KafkaTestingNative.EnsureLoaded();
            return Marshal.PtrToStringAnsi(Native.rd_kafka_version_str())!;
        }
    }

    private MockClusterHandle Cluster => !_cluster.IsClosed ? _cluster : throw new ObjectDisposedException(nameof(KafkaMockCluster));

    private static void Check(int error, string what)
    {
        if (error != 0) throw new InvalidOperationException($"The mock cluster could not {what}: {new Error((ErrorCode)error).Reason}");
    }

    /// <summary>A librdkafka client (<c>rd_kafka_t</c>), destroyed when released.</summary>
    private sealed class ClientHandle : SafeHandle
    {
        public ClientHandle() : base(IntPtr.Zero, ownsHandle: true) { }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            Native.rd_kafka_destroy(handle);
            return true;
        }
    }

    /// <summary>
    /// A mock cluster (<c>rd_kafka_mock_cluster_t</c>) and the client it lives in: the cluster is destroyed before
    /// its client, whatever order the finalizers run in, because the cluster holds a reference on the client.
    /// </summary>
    private sealed class MockClusterHandle : SafeHandle
    {
        private ClientHandle? _client;

        public MockClusterHandle() : base(IntPtr.Zero, ownsHandle: true) { }

        public override bool IsInvalid => handle == IntPtr.Zero;

        /// <summary>Starts a cluster inside <paramref name="client"/>, which it then owns; null when librdkafka refuses.</summary>
        public static MockClusterHandle? Create(ClientHandle client, int brokers)
        {
            bool added = false;
            client.DangerousAddRef(ref added);
            var cluster = Native.rd_kafka_mock_cluster_new(client, brokers);
            if (cluster.IsInvalid)
            {
                cluster.SetHandleAsInvalid();
                if (added) client.DangerousRelease();
                return null;
            }

            cluster._client = client;
            return cluster;
        }

        protected override bool ReleaseHandle()
        {
            Native.rd_kafka_mock_cluster_destroy(handle);
            if (_client is { } client)
            {
                client.DangerousRelease();
                client.Dispose();
            }

            return true;
        }
    }

    private static class Native
    {
        private const string Lib = KafkaTestingNative.LibraryName;

        [DllImport(Lib)] public static extern IntPtr rd_kafka_version_str();

        [DllImport(Lib)] public static extern IntPtr rd_kafka_conf_new();

        [DllImport(Lib)]
        public static extern int rd_kafka_conf_set(IntPtr conf, [MarshalAs(UnmanagedType.LPStr)] string name, [MarshalAs(UnmanagedType.LPStr)] string value, StringBuilder errstr, UIntPtr errstrSize);

        [DllImport(Lib)] public static extern ClientHandle rd_kafka_new(int type, IntPtr conf, StringBuilder errstr, UIntPtr errstrSize);

        [DllImport(Lib)] public static extern void rd_kafka_destroy(IntPtr rk);

        [DllImport(Lib)] public static extern MockClusterHandle rd_kafka_mock_cluster_new(ClientHandle rk, int brokerCount);

        [DllImport(Lib)] public static extern void rd_kafka_mock_cluster_destroy(IntPtr cluster);

        [DllImport(Lib)] public static extern IntPtr rd_kafka_mock_cluster_bootstraps(MockClusterHandle cluster);

        [DllImport(Lib)] public static extern int rd_kafka_mock_topic_create(MockClusterHandle cluster, [MarshalAs(UnmanagedType.LPStr)] string topic, int partitions, int replicationFactor);

        [DllImport(Lib)] public static extern int rd_kafka_mock_broker_set_down(MockClusterHandle cluster, int brokerId);

        [DllImport(Lib)] public static extern int rd_kafka_mock_broker_set_up(MockClusterHandle cluster, int brokerId);

        [DllImport(Lib)] public static extern void rd_kafka_mock_group_initial_rebalance_delay_ms(MockClusterHandle cluster, int delayMs);

        [DllImport(Lib)] public static extern void rd_kafka_mock_push_request_errors_array(MockClusterHandle cluster, short apiKey, UIntPtr count, int[] errors);
    }
}

/// <summary>Kafka protocol request kinds, for <see cref="KafkaMockCluster.PushRequestErrors"/>.</summary>
public enum KafkaApi : short
{
    /// <summary>Produce.</summary>
    Produce = 0,
    /// <summary>Fetch.</summary>
    Fetch = 1,
    /// <summary>ListOffsets.</summary>
    ListOffsets = 2,
    /// <summary>Metadata.</summary>
    Metadata = 3,
    /// <summary>OffsetCommit.</summary>
    OffsetCommit = 8,
    /// <summary>OffsetFetch.</summary>
    OffsetFetch = 9,
    /// <summary>FindCoordinator.</summary>
    FindCoordinator = 10,
    /// <summary>InitProducerId.</summary>
    InitProducerId = 22,
    /// <summary>AddPartitionsToTxn.</summary>
    AddPartitionsToTxn = 24,
    /// <summary>AddOffsetsToTxn.</summary>
    AddOffsetsToTxn = 25,
    /// <summary>EndTxn.</summary>
    EndTxn = 26,
    /// <summary>TxnOffsetCommit.</summary>
    TxnOffsetCommit = 28,
}
