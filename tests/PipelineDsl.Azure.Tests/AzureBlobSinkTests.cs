using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Azure.Testing;
using PipelineDsl.Sources;

namespace PipelineDsl.Azure.Tests;

public sealed record Click(string User, long Value);
public sealed record UserCount(string User, long Count);

[Pipeline("azure-counts")]
public static partial class AzureCounts
{
    [Source("clicks")]
    public static partial Source<Click> Clicks();

    [UpdateState("counts", From = "clicks", Key = nameof(Click.User))]
    public static UserCount Count(string user, Click click, KeyedState<long> state)
    {
        state.Update(state.Value + 1);
        return new UserCount(user, state.Value);
    }

    [Sink("out", From = "counts")]
    public static partial Sink<UserCount> Out();
}

/// <summary>The object-store sink on Azurite, alone and end to end with the Azure checkpoint store: nothing touches a local disk.</summary>
public sealed class AzureBlobSinkTests : IClassFixture<AzuriteFixture>
{
    private readonly AzuriteServer _azurite;
    private readonly string _container = "s" + Guid.NewGuid().ToString("N");

    public AzureBlobSinkTests(AzuriteFixture azurite) => _azurite = azurite.Server;

    private BlobContainerClient Container => new(_azurite.ConnectionString, _container, new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06));

    private async Task<SortedDictionary<string, string>> BlobsAsync(string prefix)
    {
        var blobs = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await foreach (var item in Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, default))
            blobs[item.Name] = (await Container.GetBlobClient(item.Name).DownloadContentAsync()).Value.Content.ToString();
        return blobs;
    }

    [Fact]
    public async Task A_batch_is_one_blob_named_by_its_id_and_a_replay_writes_the_same_bytes()
    {
        var sink = AzureBlobSink<UserCount>.FromConnectionString(_azurite.ConnectionString, _container, "out", c => $"{c.User},{c.Count}");
        await sink.WriteBatchAsync(7, new[] { new UserCount("a", 1), new UserCount("b", 2) }, default);
        await sink.WriteBatchAsync(8, Array.Empty<UserCount>(), default);
        await sink.WriteBatchAsync(7, new[] { new UserCount("a", 1), new UserCount("b", 2) }, default);
        var blobs = await BlobsAsync("out/");
        Assert.Equal(new[] { "out/part-0000000007.txt" }, blobs.Keys);
        Assert.Equal("a,1\nb,2\n", blobs["out/part-0000000007.txt"]);
        Assert.EndsWith($"/{_container}/out/", sink.Location);
    }

    [Fact]
    public async Task A_store_that_stays_down_fails_the_batch_with_a_clear_error()
    {
        using var server = AzuriteServer.Start();
        var sink = AzureBlobSink<UserCount>.FromConnectionString(server.ConnectionString, "down", "out", c => c.User,
            new AzureBlobSinkOptions { OutageLimit = TimeSpan.FromSeconds(2), RequestTimeout = TimeSpan.FromSeconds(1) });
        server.Stop();
        var e = await Assert.ThrowsAsync<IOException>(() => sink.WriteBatchAsync(1, new[] { new UserCount("a", 1) }, default));
        Assert.Contains("sink", e.Message);
        Assert.Contains("writing batch 1", e.Message);
        Assert.Contains("runs again on restart", e.Message);
    }

    [Fact]
    public async Task A_pipeline_with_checkpoint_and_output_on_Azure_continues_exactly_across_restarts()
    {
        var clicks = Enumerable.Range(0, 3000).Select(i => new Click("u" + (i * 7919 % 50), i)).ToList();
        var parts = new[] { clicks.Where((_, i) => i % 2 == 0).ToList(), clicks.Where((_, i) => i % 2 == 1).ToList() };
        var source = new MemorySource<Click>(2);

        async Task<RunSummary> RunAsync()
        {
            var store = AzureBlobCheckpointStore.FromConnectionString(_azurite.ConnectionString, _container, "checkpoint");
            var sink = AzureBlobSink<UserCount>.FromConnectionString(_azurite.ConnectionString, _container, "output", c => $"{c.User},{c.Count}");
            var options = new PipelineRunnerOptions { CheckpointStore = store, Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 100, CheckpointInterval = 4 };
            return await new PipelineRunner(AzureCounts.Definition, options).BindSource(AzureCounts.Clicks(), source).BindSink(AzureCounts.Out(), sink).RunAsync();
        }

        // Three runs over a growing input: each restores from Azure and continues.
        void Grow(int from) => Enumerable.Range(0, 2).ToList().ForEach(p => source.Add(p, parts[p].Skip(from).Take(500)));
        Grow(0);
        var first = await RunAsync();
        Grow(500);
        var second = await RunAsync();
        Grow(1000);
        var third = await RunAsync();
        Assert.False(first.Restored);
        Assert.True(second.Restored && third.Restored);

        // Expected, computed independently: batch b reads up to 100 records of each partition, in order; each
        // record's output is its user's running count.
        var expected = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var counts = new Dictionary<string, long>();
        for (int b = 0; b < 15; b++)
        {
            var lines = new System.Text.StringBuilder();
            foreach (var part in parts)
            {
                foreach (var c in part.Skip(b * 100).Take(100))
                {
                    counts[c.User] = counts.GetValueOrDefault(c.User) + 1;
                    lines.Append($"{c.User},{counts[c.User]}\n");
                }
            }

            expected[$"output/part-{b:D10}.txt"] = lines.ToString();
        }

        Assert.Equal(expected, await BlobsAsync("output/"));
    }
}
