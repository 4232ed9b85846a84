using System.Runtime.CompilerServices;

namespace PipelineDsl.Kafka.Testing;

/// <summary>
/// Binds this assembly's own P/Invokes (the mock cluster's functions) to the librdkafka that Confluent.Kafka
/// uses, through the Kafka connectors' resolver: two copies of librdkafka in one process would give the mock
/// cluster a broker the clients do not share a library with.
/// </summary>
internal static class KafkaTestingNative
{
    public const string LibraryName = KafkaNative.LibraryName;

    public static string? LoadedPath => KafkaNative.LoadedPath;

    // As in KafkaNative: the resolver must be in place before this assembly's first P/Invoke.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void InstallOnLoad() => KafkaNative.InstallResolver(typeof(KafkaTestingNative).Assembly);

    public static string EnsureLoaded() => KafkaNative.EnsureLoaded();
}
