using System.Globalization;
using System.Reflection;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// State far larger than a configured memory budget completes on the RocksDB backend: a keyed count over 3,000,000
/// keys with a 16 MiB block cache, in a child process (the runtime benchmark's --large-state), its peak resident
/// memory measured against the same count on the in-memory backend in the same run.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public class LargeStateTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);

    private static string Bench => typeof(LargeStateTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "Program:bench-runtime").Value!;

    private (long PeakRss, string Output) Count(string backend)
    {
        using var p = SampleProcess.StartAssembly(Bench, new[] { "--large-state", "3000000", "--backend", backend, "--block-cache-mb", "16" });
        Assert.True(p.WaitForExit(Long) == 0, p.Stdout + p.Stderr);
        Assert.Contains("3,000,000 keys in state (3,000,000)", p.Stdout);
        string line = p.Stdout.Split('\n').Single(l => l.StartsWith("peak-rss-bytes ", StringComparison.Ordinal));
        return (long.Parse(line["peak-rss-bytes ".Length..].Trim(), CultureInfo.InvariantCulture), p.Stdout);
    }

    [Fact]
    public void Three_million_keys_on_RocksDB_with_a_16_MiB_cache_complete_in_far_less_memory_than_in_memory()
    {
        var inMemory = Count("in-memory");
        var rocks = Count("rocksdb");
        log.WriteLine(inMemory.Output);
        log.WriteLine(rocks.Output);
        // The state alone is ~100 MB on the heap (~80 MB of RocksDB files); the in-memory process holds it, RocksDB holds
        // its cache and a batch's keys. Both processes hold the runtime and one batch of 100,000 records.
        Assert.True(rocks.PeakRss < inMemory.PeakRss * 0.6, $"peak RSS: RocksDB {rocks.PeakRss:N0} bytes, in-memory {inMemory.PeakRss:N0} bytes");
    }
}
