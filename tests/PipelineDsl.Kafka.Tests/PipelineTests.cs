using PipelineDsl.Kafka.Testing;
using static PipelineDsl.Kafka.Tests.KafkaTestKit;

namespace PipelineDsl.Kafka.Tests;

/// <summary>Topic → pipeline with keyed state → topic, in this process, against the mock cluster.</summary>
public sealed class PipelineTests : IDisposable
{
    private readonly KafkaMockCluster _cluster = new(brokers: 1);

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task Every_input_record_is_reflected_in_the_output_across_runs_that_restore_the_checkpoint()
    {
        _cluster.CreateTopic("clicks", 3);
        _cluster.CreateTopic("totals", 3);
        string checkpoint = TempDir();

        // Three runs on one checkpoint, with more input arriving between them.
        for (int round = 0; round < 3; round++)
        {
            ProduceClicks(_cluster.BootstrapServers, "clicks", round * 2000, (round + 1) * 2000);
            using var source = Source(_cluster.BootstrapServers, "clicks");
            using var sink = Sink(_cluster.BootstrapServers, "totals");
            var summary = await Runner(checkpoint, source, sink).RunAsync();
            Assert.Equal(2000, summary.InputRecords);
            Assert.Equal(round > 0, summary.Restored);
        }

        var (totals, clicks) = Expected(6000);
        var output = ReadTotals(_cluster.BootstrapServers, "totals");
        Assert.Equal(totals, output.Totals);
        Assert.Equal(clicks.Order(), output.Clicks.Order());
        Assert.Equal(clicks.Count, output.Records); // no replays happened, so not one duplicate either
    }

    [Fact]
    public async Task Broker_down_for_a_while_the_pipeline_waits_retries_and_resumes_with_nothing_lost()
    {
        _cluster.CreateTopic("clicks", 2);
        _cluster.CreateTopic("totals", 2);
        var warnings = new List<string>();
        using var source = Source(_cluster.BootstrapServers, "clicks", w => { lock (warnings) warnings.Add(w); });
        using var sink = Sink(_cluster.BootstrapServers, "totals", w => { lock (warnings) warnings.Add(w); });
        using var stop = new CancellationTokenSource();
        var runner = Runner(TempDir(), source, sink, TriggerMode.Continuous, cap: 200);
        long processed = 0;
        runner.BatchCompleted += p => Interlocked.Add(ref processed, p.InputRecords);
        var run = runner.RunAsync(stop.Token);

        ProduceClicks(_cluster.BootstrapServers, "clicks", 0, 1000);
        await Eventually.UntilAsync(() => Interlocked.Read(ref processed) >= 1000, TimeSpan.FromSeconds(60), "1,000 records processed");

        _cluster.SetBrokerDown(1);
        await Task.Delay(TimeSpan.FromSeconds(4)); // batches plan, read and write against a dead broker meanwhile
        _cluster.SetBrokerUp(1);
        ProduceClicks(_cluster.BootstrapServers, "clicks", 1000, 2000);
        await Eventually.UntilAsync(() => Interlocked.Read(ref processed) >= 2000, TimeSpan.FromSeconds(90), "2,000 records processed");
        stop.Cancel();
        await run;

        var (totals, clicks) = Expected(2000);
        var output = ReadTotals(_cluster.BootstrapServers, "totals");
        Assert.Equal(totals, output.Totals);
        Assert.Empty(clicks.Except(output.Clicks));
    }

    [Fact]
    public async Task A_non_retriable_error_fails_the_run_with_a_clear_message_and_a_restart_continues_from_the_checkpoint()
    {
        _cluster.CreateTopic("clicks", 1);
        _cluster.CreateTopic("totals", 1);
        string checkpoint = TempDir();
        ProduceClicks(_cluster.BootstrapServers, "clicks", 0, 1000);
        using (var source = Source(_cluster.BootstrapServers, "clicks"))
        using (var sink = Sink(_cluster.BootstrapServers, "totals"))
            await Runner(checkpoint, source, sink).RunAsync();

        ProduceClicks(_cluster.BootstrapServers, "clicks", 1000, 2000);
        _cluster.PushRequestErrors(KafkaApi.Produce, Enumerable.Repeat(Confluent.Kafka.ErrorCode.TopicAuthorizationFailed, 20).ToArray());
        using (var source = Source(_cluster.BootstrapServers, "clicks"))
        using (var sink = Sink(_cluster.BootstrapServers, "totals"))
        {
            var e = await Assert.ThrowsAsync<PipelineExecutionException>(() => Runner(checkpoint, source, sink).RunAsync());
            Assert.Contains("Sink 'totals' failed to write batch", e.Message);
            Assert.Contains("TopicAuthorizationFailed", e.Message);
        }

        // Drain whatever errors are left queued, then restart: the failed batch runs again.
        _cluster.PushRequestErrors(KafkaApi.Produce);
        await Task.Delay(200);
        for (int attempt = 0; ; attempt++)
        {
            using var source = Source(_cluster.BootstrapServers, "clicks");
            using var sink = Sink(_cluster.BootstrapServers, "totals");
            try
            {
                var summary = await Runner(checkpoint, source, sink).RunAsync();
                Assert.True(summary.Restored);
                break;
            }
            catch (PipelineExecutionException) when (attempt < 20)
            {
                // Still consuming the injected errors.
            }
        }

        var (totals, clicks) = Expected(2000);
        var output = ReadTotals(_cluster.BootstrapServers, "totals");
        Assert.Equal(totals, output.Totals);
        Assert.Empty(clicks.Except(output.Clicks));
    }
}
