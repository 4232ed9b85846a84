using PipelineDsl.Kafka.Testing;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using Confluent.Kafka;

namespace PipelineDsl.Kafka.Tests;

/// <summary>
/// Which librdkafka runs: the build from the librdkafka.redist package this repository pins, one copy for
/// Confluent.Kafka and the mock cluster alike, and never another librdkafka on the system's search path.
/// </summary>
public sealed class NativeLibraryTests
{
    private static string Metadata(string key) => typeof(NativeLibraryTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    /// <summary>Every mapped file of this process whose name says librdkafka.</summary>
    private static string[] MappedLibrdkafkaFiles() => File.ReadAllLines("/proc/self/maps")
        .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Where(parts => parts.Length >= 6 && parts[5].Contains("rdkafka", StringComparison.Ordinal))
        .Select(parts => parts[5]).Distinct().ToArray();

    [Fact]
    public async Task The_loaded_librdkafka_is_the_pinned_package_build_and_the_mock_cluster_runs_on_it()
    {
        string path = KafkaLibrary.Load();
        string pinned = Metadata("LibrdkafkaRedistVersion");

        Assert.Equal(pinned, KafkaLibrary.Version);
        Assert.Equal(pinned, Library.VersionString);                  // what Confluent.Kafka itself calls
        Assert.Equal(Library.VersionString, KafkaMockCluster.NativeVersion); // what the mock cluster's P/Invokes call
        Assert.Contains(Path.GetFileName(path), new[] { "librdkafka.so", "centos8-librdkafka.so", "alpine-librdkafka.so" });
        Assert.EndsWith(Path.Combine("runtimes", "linux-x64", "native", Path.GetFileName(path)), path); // a package asset, not /usr/local/lib
        if (OperatingSystem.IsLinux()) Assert.Equal(new[] { path }, MappedLibrdkafkaFiles()); // one copy in the process

        // And it works end to end: a broker of the mock cluster takes a record and gives it back.
        using var cluster = new KafkaMockCluster();
        cluster.CreateTopic("native-check", 1);
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers }).Build())
            await producer.ProduceAsync("native-check", new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes("k"), Value = Encoding.UTF8.GetBytes("v") });
        var read = KafkaTestKit.ReadAll(cluster.BootstrapServers, "native-check");
        Assert.Equal("v", Assert.Single(read).Value);
        Assert.Equal(new[] { path }, MappedLibrdkafkaFiles());
    }

    [Fact]
    [Trait(ProcessLane.Trait, ProcessLane.Value)]
    public async Task A_foreign_librdkafka_on_the_search_path_is_never_loaded()
    {
        // A shared library that loads fine but is not librdkafka, put first on the search path under librdkafka's
        // names: what a stale /usr/local/lib/librdkafka.so is to a machine. The runtime's default probing finds it as
        // soon as the package's default build fails to load (it needs libsasl2.so.3, which Debian 12 lacks).
        Assert.True(OperatingSystem.IsLinux(), "this test covers Linux's search path (LD_LIBRARY_PATH)");
        string decoys = Path.Combine(Path.GetTempPath(), "pdsl-decoy-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(decoys);
        try
        {
            string impostor = Path.Combine(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory(), "libSystem.Native.so");
            foreach (var name in new[] { "librdkafka.so", "librdkafka.so.1" }) File.Copy(impostor, Path.Combine(decoys, name));

            using var broker = ChildProcess.Start(Metadata("DevBrokerAssembly"), Array.Empty<string>(), new Dictionary<string, string> { ["LD_LIBRARY_PATH"] = decoys }, quitCommand: "quit");
            string? first = null;
            try
            {
                first = broker.ReadLine(TimeSpan.FromSeconds(30));
                broker.WriteLine("quit");
            }
            catch (Exception e) when (e is TimeoutException or IOException)
            {
                // It is gone already, or never started; its standard error says why.
            }

            int exitCode = broker.WaitForExit(TimeSpan.FromSeconds(30));
            string error = broker.Stderr;

            Assert.True(first is not null && first.StartsWith("bootstrap.servers=127.0.0.1:", StringComparison.Ordinal), $"the broker did not start: {first}\n{error}");
            Assert.Equal(0, exitCode);
            Assert.Contains($"librdkafka {Metadata("LibrdkafkaRedistVersion")} from ", error);
            Assert.DoesNotContain(decoys, error);
        }
        finally
        {
            Directory.Delete(decoys, recursive: true);
        }
    }
}
