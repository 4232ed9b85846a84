using System.Text;
using PipelineDsl.Sources;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>Lines from a receiver, straight to a sink.</summary>
[Pipeline("socket-lines")]
public static partial class SocketLines
{
    [Source("lines")]
    public static partial Source<string> Lines();

    [Sink("out", From = "lines")]
    public static partial Sink<string> Out();
}

/// <summary>
/// The channel receiver through the real runner: what was acknowledged reaches the sink exactly once across restarts,
/// the log's segments go once no recovery can read them, and a full backlog holds writers back until batches commit.
/// </summary>
public class ReceiverTests(ITestOutputHelper log)
{
    private static byte[] Serialize(Event e) => Encoding.UTF8.GetBytes(e.User + "\t" + e.Value);

    private static Event Deserialize(ReadOnlyMemory<byte> bytes)
    {
        string text = Encoding.UTF8.GetString(bytes.Span);
        int tab = text.IndexOf('\t');
        return new Event(text[..tab], long.Parse(text[(tab + 1)..]));
    }

    private static ChannelReceiverSource<Event> Receiver(TempDir dir, ReceiverOptions? options = null) =>
        new(dir.Sub("wal"), Serialize, Deserialize, options ?? new ReceiverOptions { SegmentBytes = 4096 });

    private static PipelineRunnerOptions Options(TempDir dir) => new()
    {
        CheckpointDirectory = dir.Sub("checkpoint"),
        Trigger = TriggerMode.AvailableNow,
        MaxRecordsPerPartition = 200,
        CheckpointInterval = 2,
        RetainedSnapshots = 1,
    };

    /// <summary>The running maximum per user, emitted when it rises: independent of how records fall into batches.</summary>
    private static List<Total?> Reference(IEnumerable<Event> events)
    {
        var max = new Dictionary<string, long>();
        var output = new List<Total?>();
        foreach (var e in events)
        {
            if (max.TryGetValue(e.User, out long m) && e.Value <= m) continue;
            max[e.User] = e.Value;
            output.Add(new Total(e.User, e.Value, 0));
        }

        return output;
    }

    [Fact]
    public async Task Acknowledged_records_reach_the_sink_exactly_once_across_restarts_and_read_segments_are_deleted()
    {
        var random = TestRandom.Create(7, log);
        var events = Enumerable.Range(0, 5_000).Select(_ => new Event("u" + random.Next(30), random.Next(100_000))).ToList();
        using var dir = new TempDir();
        var sink = new CollectingSink<Total?>();

        using (var receiver = Receiver(dir))
        {
            foreach (var e in events.Take(3_000)) await receiver.WriteAsync(e);
            var summary = await new PipelineRunner(RunningMax.Definition, Options(dir)).BindSource(RunningMax.Events(), receiver).BindSink(RunningMax.Out(), sink).RunAsync();
            Assert.Equal(15, summary.BatchesRun);
            Assert.Equal(0, receiver.Backlog);
        }

        // Segments wholly below the oldest retained snapshot (the final one, after record 3,000) were deleted; the one
        // holding record 3,000's predecessors onward stays for a recovery.
        var left = Directory.GetFiles(dir.Sub("wal"), "*.wal").Select(f => long.Parse(Path.GetFileNameWithoutExtension(f))).Order().ToList();
        Assert.InRange(left[0], 2_500, 3_000);

        // A new process: more records, a restart on the same checkpoint and log.
        using (var receiver = Receiver(dir))
        {
            Assert.Equal(left[0], await receiver.GetInitialPositionAsync("0", true, default));
            foreach (var e in events.Skip(3_000)) await receiver.WriteAsync(e);
            var summary = await new PipelineRunner(RunningMax.Definition, Options(dir)).BindSource(RunningMax.Events(), receiver).BindSink(RunningMax.Out(), sink).RunAsync();
            Assert.True(summary.Restored);
            Assert.Equal(10, summary.BatchesRun);
        }

        Assert.Equal(Reference(events), sink.All);
    }

    [Fact]
    public async Task A_full_backlog_holds_writers_back_until_a_batch_commits()
    {
        using var dir = new TempDir();
        using var receiver = Receiver(dir, new ReceiverOptions { MaxBacklogRecords = 100 });
        for (int i = 0; i < 100; i++) await receiver.WriteAsync(new Event("u" + i % 7, i));
        var held = receiver.WriteAsync(new Event("late", 1_000));
        await Task.Delay(300);
        Assert.False(held.IsCompleted, "a write went past the backlog bound");
        Assert.Equal(100, receiver.Backlog);

        var sink = new CollectingSink<Total?>();
        await new PipelineRunner(RunningMax.Definition, Options(dir)).BindSource(RunningMax.Events(), receiver).BindSink(RunningMax.Out(), sink).RunAsync();
        Assert.Same(held, await Task.WhenAny(held, Task.Delay(TimeSpan.FromSeconds(30))));
        Assert.Equal(100, await held);
        Assert.Equal(1, receiver.Backlog);
    }

    [Fact]
    public async Task Without_state_segments_go_once_the_batch_after_them_commits()
    {
        using var dir = new TempDir();
        using var receiver = Receiver(dir);
        for (int i = 0; i < 4_000; i++) await receiver.WriteAsync(new Event("u" + i % 7, i));
        var output = new CollectingSink<Total>();
        var summary = await new PipelineRunner(Chained.Definition, Options(dir))
            .BindSource(Chained.Events(), receiver)
            .BindSink(Chained.ScaledOut(), new CollectingSink<Event>())
            .BindSink(Chained.Out(), output)
            .RunAsync();
        Assert.Equal(20, summary.BatchesRun);
        var left = Directory.GetFiles(dir.Sub("wal"), "*.wal").Select(f => long.Parse(Path.GetFileNameWithoutExtension(f))).Order().ToList();
        // Batches of 200 records: once batch 19 committed, a restart may still re-run it (its commit file is not
        // fsynced) from its logged range [3,800, 4,000), so only segments wholly below 3,800 may go.
        Assert.InRange(left[0], 3_500, 3_800);
        Assert.NotEmpty(output.All);
    }

    [Fact]
    public async Task A_socket_receiver_logs_the_servers_lines_in_order_pauses_at_its_backlog_and_reconnects()
    {
        using var dir = new TempDir();
        var server = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        server.Start();
        try
        {
            await SocketReceiverRoundAsync(dir, server);
        }
        finally
        {
            server.Stop(); // also when an assertion fails, so that the port is not held for the rest of the run
        }
    }

    private static async Task SocketReceiverRoundAsync(TempDir dir, System.Net.Sockets.TcpListener server)
    {
        int port = ((System.Net.IPEndPoint)server.LocalEndpoint).Port;
        // Some lines carry multi-byte UTF-8 characters, which the receiver's buffer may split between two reads.
        var lines = Enumerable.Range(0, 20_000).Select(i => $"line {i} " + new string('x', i % 40) + (i % 7 == 0 ? " é日本語" : "")).ToList();
        async Task Serve(IEnumerable<string> what, bool cutLastLine, bool overlongLineFirst = false)
        {
            using var client = await server.AcceptTcpClientAsync();
            using var stream = client.GetStream();
            // A line over the receiver's 1 MiB limit is dropped, and the lines after it still arrive.
            if (overlongLineFirst) await stream.WriteAsync(Encoding.UTF8.GetBytes(new string('y', 1_500_000) + "\n"));
            foreach (string line in what)
            {
                var bytes = Encoding.UTF8.GetBytes(line + "\r\n");
                await stream.WriteAsync(bytes);
            }

            if (cutLastLine) await stream.WriteAsync(Encoding.UTF8.GetBytes("a line cut by the connection's end"));
        }

        using var receiver = new SocketTextReceiverSource("127.0.0.1", port, dir.Sub("wal"), new ReceiverOptions { MaxBacklogRecords = 5_000 });
        // First connection: 12,000 lines and a cut one. With no batch running, reading pauses at the backlog bound.
        var first = Serve(lines.Take(12_000), cutLastLine: true);
        await Eventually.UntilAsync(() => receiver.Backlog == 5_000, TimeSpan.FromSeconds(30), "the backlog at its bound");
        await Task.Delay(300);
        Assert.Equal(5_000, receiver.Backlog);
        Assert.Equal(5_000, receiver.LinesReceived); // reading paused: the rest waits in the sockets' buffers

        // Batches run: the receiver reads on; the server's connection ends; the receiver reconnects for the rest.
        var sink = new CollectingSink<string>();
        using var stop = new CancellationTokenSource();
        var options = new PipelineRunnerOptions { CheckpointDirectory = dir.Sub("checkpoint"), Trigger = TriggerMode.Continuous, BatchInterval = TimeSpan.FromMilliseconds(20), MaxRecordsPerPartition = 1_000 };
        var run = new PipelineRunner(SocketLines.Definition, options).BindSource(SocketLines.Lines(), receiver).BindSink(SocketLines.Out(), sink).RunAsync(stop.Token);
        await first;
        await Serve(lines.Skip(12_000), cutLastLine: false, overlongLineFirst: true);
        await Eventually.UntilAsync(() => sink.All.Count >= 20_000, TimeSpan.FromSeconds(60), "all 20,000 lines delivered");
        stop.Cancel();
        await run;

        Assert.Equal(lines, sink.All); // in order, each once, without the cut line or the overlong one
    }

    private static Event ParseLine(string line)
    {
        var f = line.Split(',');
        return new Event(f[0], long.Parse(f[1]));
    }

    [Fact]
    public async Task An_idempotency_key_adds_a_request_once_also_after_a_restart_and_a_full_backlog_says_so()
    {
        using var dir = new TempDir();
        using (var receiver = new HttpReceiverSource<Event>(dir.Sub("wal"), ParseLine, new ReceiverOptions { MaxBacklogRecords = 3 }))
        {
            Assert.Equal(new IngestResult(IngestOutcome.Accepted, 0), await receiver.IngestAsync(new[] { "a,1", "b,2" }, "k0"));
            // The same key at once, concurrently and later: nothing added, the first request's position.
            var again = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => receiver.IngestAsync(new[] { "a,1", "b,2" }, "k0")));
            Assert.All(again, r => Assert.Equal(new IngestResult(IngestOutcome.Duplicate, 0), r));
            Assert.Equal(IngestOutcome.Accepted, (await receiver.IngestAsync(new[] { "c,3" }, null)).Outcome);
            Assert.Equal(new IngestResult(IngestOutcome.Accepted, 2), await receiver.IngestAsync(new[] { "d,4" }, "k2"));
            Assert.Equal(new IngestResult(IngestOutcome.Backlogged, -1), await receiver.IngestAsync(new[] { "e,5" }, "k3"));
            Assert.Equal(3, receiver.Backlog);
        }

        // A new process: the keys are read back from the log.
        using var restarted = new HttpReceiverSource<Event>(dir.Sub("wal"), ParseLine, new ReceiverOptions { MaxBacklogRecords = 3 });
        Assert.Equal(new IngestResult(IngestOutcome.Duplicate, 2), await restarted.IngestAsync(new[] { "d,4" }, "k2"));
        var sink = new CollectingSink<Total?>();
        await new PipelineRunner(RunningMax.Definition, Options(dir)).BindSource(RunningMax.Events(), restarted).BindSink(RunningMax.Out(), sink).RunAsync();
        Assert.Equal(new Total?[] { new("a", 1, 0), new("b", 2, 0), new("c", 3, 0), new("d", 4, 0) }, sink.All);
        Assert.Equal(new IngestResult(IngestOutcome.Accepted, 3), await restarted.IngestAsync(new[] { "e,5" }, "k3")); // room again
    }

    [Fact]
    public async Task A_line_that_does_not_parse_is_a_bad_record_naming_the_request_not_a_lost_request()
    {
        using var dir = new TempDir();
        using var receiver = new HttpReceiverSource<Event>(dir.Sub("wal"), ParseLine);
        await receiver.IngestAsync(new[] { "a,1" }, "first");
        await receiver.IngestAsync(new[] { "b,2", "not a record", "c,3" }, "second");
        var sink = new CollectingSink<Total?>();
        var bad = await Assert.ThrowsAsync<BadRecordException>(() =>
            new PipelineRunner(RunningMax.Definition, Options(dir)).BindSource(RunningMax.Events(), receiver).BindSink(RunningMax.Out(), sink).RunAsync());
        Assert.Equal((1L, "not a record"), (bad.Position, bad.Raw)); // the second request's position, the line itself
        Assert.Contains("BadRecordPolicy = DeadLetter", bad.Message);
    }
}
