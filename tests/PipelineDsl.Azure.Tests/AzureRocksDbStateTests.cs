using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Azure;
using PipelineDsl.Azure.Testing;
using PipelineDsl.Checkpointing;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;
using Xunit.Abstractions;

namespace PipelineDsl.Azure.Tests;

public sealed record Hit(string Key, long Value);

/// <summary>A running count and sum per key: keyed state that grows and changes every batch.</summary>
[Pipeline("azure-rocks-tally")]
public static partial class AzureRocksTally
{
    [Source("hits")]
    public static partial Source<Hit> Hits();

    [UpdateState("tally", From = "hits", Key = nameof(Hit.Key))]
    public static string Update(string key, Hit hit, KeyedState<long[]> state)
    {
        var next = state.Exists ? new[] { state.Value[0] + 1, state.Value[1] + hit.Value } : new[] { 1L, hit.Value };
        state.Update(next);
        return $"{key} {next[0]} {next[1]}";
    }

    [Sink("out", From = "tally")]
    public static partial Sink<string> Out();
}

/// <summary>
/// The RocksDB backend with its checkpoint on Azure Blob Storage (Azurite): incremental snapshots upload their SST
/// files as blobs under <c>shared/</c>, and a run on another machine (no local copy) downloads them and continues
/// exactly; the blobs no retained snapshot lists are deleted.
/// </summary>
public sealed class AzureRocksDbStateTests(AzuriteFixture azurite, ITestOutputHelper log) : IClassFixture<AzuriteFixture>, IDisposable
{
    private readonly string _container = "c" + Guid.NewGuid().ToString("N");
    private readonly string _local = Path.Combine(Path.GetTempPath(), "pdsl-azure-rocks-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(_local, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private sealed class Collect : ISinkConnector<string>
    {
        public readonly SortedDictionary<long, List<string>> Batches = new();

        public Task WriteBatchAsync(long batchId, IReadOnlyList<string> records, CancellationToken cancellationToken)
        {
            lock (Batches) Batches[batchId] = records.ToList();
            return Task.CompletedTask;
        }
    }

    private async Task RunAsync(ICheckpointStore? store, string? directory, StateBackend backend, IReadOnlyList<Hit> hits, Collect sink)
    {
        var source = new MemorySource<Hit>();
        source.Add(0, hits);
        await new PipelineRunner(AzureRocksTally.Definition, new PipelineRunnerOptions
        {
            CheckpointStore = store,
            CheckpointDirectory = directory,
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = 500,
            CheckpointInterval = 3,
            RetainedSnapshots = 2,
            StateBackend = backend,
        }).BindSource(AzureRocksTally.Hits(), source).BindSink(AzureRocksTally.Out(), sink).RunAsync();
    }

    [Fact]
    public async Task Shared_files_go_to_blobs_and_a_run_without_the_local_copy_downloads_them_and_continues_exactly()
    {
        var random = new Random(20261205);
        log.WriteLine("seed 20261205");
        var hits = Enumerable.Range(0, 12_000).Select(_ => new Hit("k" + random.Next(2_000), random.Next(1, 1_000))).ToList();
        AzureBlobCheckpointStore Store() => AzureBlobCheckpointStore.FromConnectionString(azurite.Server.ConnectionString, _container, "job");

        // The reference: the whole input on the in-memory backend, on local disk.
        var reference = new Collect();
        await RunAsync(null, Path.Combine(_local, "reference"), StateBackend.InMemory, hits, reference);

        // The first half on RocksDB with the checkpoint in Blob Storage, on "machine A".
        var output = new Collect();
        await RunAsync(Store(), null, new RocksDbStateBackend(Path.Combine(_local, "machine-a")), hits.Take(6_000).ToList(), output);
        var container = new BlobContainerClient(azurite.Server.ConnectionString, _container, new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06));
        async Task<List<BlobItem>> Shared()
        {
            var blobs = new List<BlobItem>();
            await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, "job/shared/", CancellationToken.None)) blobs.Add(blob);
            return blobs;
        }

        var afterA = await Shared();
        Assert.NotEmpty(afterA);
        Assert.All(afterA, b => Assert.EndsWith(".sst", b.Name, StringComparison.Ordinal));

        // The rest on "machine B": nothing local, so every listed file is downloaded (and verified) from the container.
        await RunAsync(Store(), null, new RocksDbStateBackend(Path.Combine(_local, "machine-b")), hits, output);

        Assert.Equal(reference.Batches.Keys, output.Batches.Keys);
        foreach (var (batch, lines) in reference.Batches) Assert.Equal(lines, output.Batches[batch]);

        // Only files a retained snapshot lists remain: the first machine's early files are gone.
        var afterB = await Shared();
        Assert.NotEmpty(afterB);
        Assert.Contains(afterA, a => afterB.All(b => b.Name != a.Name));
        log.WriteLine($"shared blobs: {afterA.Count} after machine A, {afterB.Count} after machine B");
    }
}
