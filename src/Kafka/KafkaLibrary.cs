using System;

namespace PipelineDsl.Kafka;

/// <summary>
/// The native librdkafka behind the Kafka connectors. PipelineDsl binds Confluent.Kafka and its own native calls
/// to one build from the <c>librdkafka.redist</c> package (never to another librdkafka on the system's search
/// path); see the README's Kafka section.
/// </summary>
public static class KafkaLibrary
{
    /// <summary>
    /// Loads librdkafka now, so that a missing or unloadable library is one clear error at start rather than
    /// a type-initializer failure at the first Kafka call. Call it before using Confluent.Kafka directly in
    /// the same process, so that those calls bind to the same library.
    /// </summary>
    /// <returns>The file that was loaded.</returns>
    /// <exception cref="InvalidOperationException">No build of librdkafka loads here; the message says why.</exception>
    public static string Load() => KafkaNative.EnsureLoaded();

    /// <summary>The loaded librdkafka's version string, for example <c>2.16.0</c> (loads it first).</summary>
    public static string Version
    {
        get
        {
            KafkaNative.EnsureLoaded();
            return Confluent.Kafka.Library.VersionString;
        }
    }
}
