using System.Text;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Azure.Testing;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Azure.Tests;

/// <summary>
/// The receivers' write-ahead log on Azurite: group-committed appends to append blobs, read back in order by a new
/// process, two processes appending to one log without interleaving a frame (each learns the other's records), keys
/// of a request another process logged recognized after a takeover, and a pipeline continuing exactly across restarts
/// with its checkpoint and its receiver's log both on the store.
/// </summary>
public sealed class AzureBlobReceiverLogTests : IClassFixture<AzuriteFixture>
{
    private readonly AzuriteServer _azurite;
    private readonly string _container = "w" + Guid.NewGuid().ToString("N");

    public AzureBlobReceiverLogTests(AzuriteFixture azurite) => _azurite = azurite.Server;

    private BlobContainerClient Container => new(_azurite.ConnectionString, _container, new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06));

    private AzureBlobReceiverLogStorage Storage(string prefix = "wal") => new(Container, prefix, TimeSpan.FromSeconds(10));

    private static ReceiverOptions Small => new() { SegmentBytes = 8 * 1024 };

    private static List<string> ReadAll(WriteAheadLog log)
    {
        var all = new List<string>();
        log.Read(log.Start, log.DurableEnd, (_, bytes) => all.Add(Encoding.UTF8.GetString(bytes.Span)));
        return all;
    }

    private async Task<List<string>> SegmentNamesAsync(string prefix)
    {
        var names = new List<string>();
        await foreach (var item in Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix + "/", default)) names.Add(item.Name);
        return names;
    }

    [Fact]
    public async Task Concurrent_appends_are_group_committed_into_append_blobs_and_read_back_in_order_by_a_new_process()
    {
        var records = Enumerable.Range(0, 3_000).Select(i => $"record {i} " + new string('x', i % 50)).ToList();
        using (var log = Storage().Open(Small))
        {
            // In 30 waves of 100 appended at once: positions follow the order of the calls, and many share one append.
            var positions = new List<long>();
            foreach (var wave in records.Chunk(100)) positions.AddRange(await Task.WhenAll(wave.Select(r => log.AppendAsync(Encoding.UTF8.GetBytes(r)))));
            Assert.Equal(Enumerable.Range(0, records.Count).Select(i => (long)i), positions);
            Assert.True(log.Syncs < records.Count / 4, $"{log.Syncs} appends for {records.Count} records: not group-committed");
        }

        using var reopened = Storage().Open(Small);
        Assert.Equal(records.Count, reopened.DurableEnd);
        Assert.Equal(records, ReadAll(reopened));
        var segments = await SegmentNamesAsync("wal");
        Assert.True(segments.Count > 5, $"only {segments.Count} segments for ~100 KB in 8 KiB segments");
        Assert.All(segments, s => Assert.Matches(@"^wal/\d{19}\.wal$", s));

        // Retention: segments whose records all lie below a position go; the rest still reads.
        reopened.DeleteBelow(2_000);
        Assert.True(reopened.Start is > 0 and <= 2_000);
        Assert.True((await SegmentNamesAsync("wal")).Count < segments.Count);
        var tail = new List<string>();
        reopened.Read(2_000, reopened.DurableEnd, (_, bytes) => tail.Add(Encoding.UTF8.GetString(bytes.Span)));
        Assert.Equal(records.Skip(2_000), tail);
    }

    [Fact]
    public async Task Two_processes_appending_to_one_log_never_interleave_a_frame_and_each_learns_the_others_records()
    {
        using var a = Storage().Open(Small);
        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => a.AppendAsync(Encoding.UTF8.GetBytes($"a{i}"))));

        // B opens the log (a standby taking over while A still runs) and appends; A, not knowing, appends too.
        using var b = Storage().Open(Small);
        Assert.Equal(100, b.DurableEnd);
        for (int i = 0; i < 50; i++) Assert.Equal(100 + i, await b.AppendAsync(Encoding.UTF8.GetBytes($"b{i}")));
        var learnedByA = new List<(long, string)>();
        a.RecordFromElsewhere = (position, bytes) => learnedByA.Add((position, Encoding.UTF8.GetString(bytes.Span)));
        long next = await a.AppendAsync(Encoding.UTF8.GetBytes("a100"));
        Assert.Equal(150, next); // after B's records, which A read first
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (100L + i, $"b{i}")), learnedByA);

        // B learns A's record when asked for the log's end (as a batch plan asks).
        Assert.Equal(150, b.DurableEnd);
        await b.CatchUpAsync();
        Assert.Equal(151, b.DurableEnd);

        var expected = Enumerable.Range(0, 100).Select(i => $"a{i}").Concat(Enumerable.Range(0, 50).Select(i => $"b{i}")).Append("a100").ToList();
        using var c = Storage().Open(Small);
        Assert.Equal(expected, ReadAll(c));
        Assert.Equal(expected, ReadAll(a));
    }

    [Fact]
    public async Task A_record_larger_than_one_append_is_refused_with_a_clear_error_and_the_log_goes_on()
    {
        using var log = Storage().Open(new ReceiverOptions());
        var e = await Assert.ThrowsAsync<IOException>(() => log.AppendAsync(new byte[5 << 20]));
        Assert.Contains("at most 4194296 bytes", e.Message);
        Assert.Contains("smaller parts", e.Message);
        Assert.Equal(0, await log.AppendAsync(new byte[100]));
    }

    [Fact]
    public async Task After_a_takeover_a_retried_request_is_a_duplicate_whichever_process_logged_it()
    {
        var storage = Storage("http");
        using var first = new HttpReceiverSource<string>(storage, line => line);
        Assert.Equal(IngestOutcome.Accepted, (await first.IngestAsync(new[] { "one" }, "k1")).Outcome);

        // The second process reads the keys the log holds when it opens...
        using var second = new HttpReceiverSource<string>(storage, line => line);
        Assert.Equal(IngestOutcome.Duplicate, (await second.IngestAsync(new[] { "one" }, "k1")).Outcome);

        // ...and learns those the first logs later when it catches up (every batch plan does).
        Assert.Equal(IngestOutcome.Accepted, (await first.IngestAsync(new[] { "two" }, "k2")).Outcome);
        Assert.Equal(2, await second.GetEndPositionAsync("0", default));
        var retry = await second.IngestAsync(new[] { "two" }, "k2");
        Assert.Equal(new IngestResult(IngestOutcome.Duplicate, 1), retry);
        Assert.Equal(IngestOutcome.Accepted, (await second.IngestAsync(new[] { "three" }, "k3")).Outcome);
        Assert.Equal(3, second.Backlog);
    }

    private sealed class ListSink : ISinkConnector<UserCount>
    {
        public List<UserCount> All { get; } = new();

        public Task WriteBatchAsync(long batchId, IReadOnlyList<UserCount> records, CancellationToken cancellationToken)
        {
            All.AddRange(records);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task A_pipeline_with_its_checkpoint_and_its_receivers_log_on_Azure_counts_every_acknowledged_record_once_across_restarts()
    {
        static byte[] Serialize(Click c) => Encoding.UTF8.GetBytes($"{c.User},{c.Value}");
        static Click Deserialize(ReadOnlyMemory<byte> bytes)
        {
            var f = Encoding.UTF8.GetString(bytes.Span).Split(',');
            return new Click(f[0], long.Parse(f[1]));
        }

        var clicks = Enumerable.Range(0, 1_500).Select(i => new Click("u" + (i * 7919 % 20), i)).ToList();
        var sink = new ListSink();
        var runs = new List<RunSummary>();
        for (int run = 0; run < 3; run++)
        {
            // Each run is a new process: a new receiver on the same log, a new store on the same checkpoint.
            using var receiver = new ChannelReceiverSource<Click>(Storage("clicks"), Serialize, Deserialize, Small);
            await Task.WhenAll(clicks.Skip(run * 500).Take(500).Select(c => receiver.WriteAsync(c)));
            var store = AzureBlobCheckpointStore.FromConnectionString(_azurite.ConnectionString, _container, "checkpoint");
            var options = new PipelineRunnerOptions { CheckpointStore = store, Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 120, CheckpointInterval = 3, RetainedSnapshots = 1 };
            runs.Add(await new PipelineRunner(AzureCounts.Definition, options).BindSource(AzureCounts.Clicks(), receiver).BindSink(AzureCounts.Out(), sink).RunAsync());
        }

        Assert.False(runs[0].Restored);
        Assert.True(runs[1].Restored && runs[2].Restored);
        // Each user's last count is their clicks; every click produced exactly one output, in log order.
        var counts = new Dictionary<string, long>();
        var expected = clicks.Select(c => new UserCount(c.User, counts[c.User] = counts.GetValueOrDefault(c.User) + 1)).ToList();
        Assert.Equal(expected, sink.All);
        // Segments read by every retained snapshot are gone from the store.
        var segments = await SegmentNamesAsync("clicks");
        Assert.NotEmpty(segments);
        Assert.DoesNotContain("clicks/0000000000000000000.wal", segments);
    }
}
