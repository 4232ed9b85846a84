using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Hosting.Tests;

public sealed record Tap(string Key, long Value);

public sealed record Total(string Key, long Sum);

[Pipeline("hosted-totals")]
public static partial class HostedTotals
{
    [Source("taps")]
    public static partial Source<Tap> Taps();

    [UpdateState("sum", From = "taps", Key = nameof(Tap.Key))]
    public static Total Sum(string key, Tap tap, KeyedState<long> state)
    {
        state.Update(state.Value + tap.Value);
        return new Total(key, state.Value);
    }

    [Sink("out", From = "sum")]
    public static partial Sink<Total> Out();
}

/// <summary>Keeps every batch by id (a re-delivered batch replaces itself); can be told to fail.</summary>
public sealed class KeepingSink : ISinkConnector<Total>
{
    private readonly SortedDictionary<long, List<Total>> _batches = new();

    public bool Fail { get; set; }

    /// <summary>Awaited before each batch is kept: a test holds a batch in its sink with it.</summary>
    public Func<long, Task>? BeforeWrite { get; set; }

    public List<Total> All
    {
        get
        {
            lock (_batches) return _batches.Values.SelectMany(b => b).ToList();
        }
    }

    public async Task WriteBatchAsync(long batchId, IReadOnlyList<Total> records, CancellationToken cancellationToken)
    {
        if (Fail) throw new IOException("the test's sink refuses batch " + batchId);
        if (BeforeWrite is { } wait) await wait(batchId);
        lock (_batches) _batches[batchId] = records.ToList();
    }
}

/// <summary>
/// A pipeline run as a hosted service through <see cref="IHost"/>: options from configuration, validated at start
/// with errors naming the key; start, batches, health, graceful stop with a final snapshot; a failure stopping the host
/// with exit code 1; a standby's readiness.
/// </summary>
[Collection(ExitCodeCollection.Name)]
public class HostingTests
{
    private static List<Tap> Input(int n) => Enumerable.Range(0, n).Select(i => new Tap("k" + (i % 7), i)).ToList();

    /// <summary>The running totals a plain loop computes for the same input.</summary>
    private static List<Total> Reference(IEnumerable<Tap> taps)
    {
        var sums = new Dictionary<string, long>();
        var output = new List<Total>();
        foreach (var t in taps)
        {
            sums[t.Key] = sums.GetValueOrDefault(t.Key) + t.Value;
            output.Add(new Total(t.Key, sums[t.Key]));
        }

        return output;
    }

    private static IHost Build(Dictionary<string, string?> settings, MemorySource<Tap> source, KeepingSink sink, Action<IServiceCollection>? more = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddPipeline(HostedTotals.Definition, builder.Configuration.GetSection("Pipeline"))
            .BindConnectors((_, runner) => runner.BindSource(HostedTotals.Taps(), source).BindSink(HostedTotals.Out(), sink));
        builder.Services.AddHealthChecks().AddPipelineChecks();
        more?.Invoke(builder.Services);
        return builder.Build();
    }

    private static Dictionary<string, string?> Settings(TempDir dir, params (string Key, string? Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Pipeline:CheckpointDirectory"] = dir.Sub("checkpoint"),
            ["Pipeline:Trigger"] = "Continuous",
            ["Pipeline:BatchInterval"] = "00:00:00.020",
            ["Pipeline:MaxRecordsPerPartition"] = "10",
            ["Pipeline:Parallelism"] = "1",
        };
        foreach (var (key, value) in extra) settings[key] = value;
        return settings;
    }

    private static async Task<HealthReport> HealthAsync(IHost host, string tag) =>
        await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Tags.Contains(tag));

    [Fact]
    public async Task A_hosted_pipeline_runs_reports_health_and_stops_gracefully_with_a_final_snapshot()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Tap>();
        var input = Input(35);
        source.Add(0, input);
        var sink = new KeepingSink();
        using var host = Build(Settings(dir, ("Pipeline:ProgressLogDirectory", dir.Sub("progress")), ("Pipeline:RecentBatches", "3")), source, sink);
        var registry = host.Services.GetRequiredService<PipelineRegistry>();
        Assert.Equal(PipelineRunPhase.NotStarted, registry.StatusOf("hosted-totals").Phase);

        await host.StartAsync();
        await Eventually.UntilAsync(() => sink.All.Count == input.Count, TimeSpan.FromSeconds(30), "all 35 records delivered");
        var status = registry.StatusOf("hosted-totals");
        Assert.Equal(PipelineRunPhase.Running, status.Phase);
        Assert.Equal(3, status.LastBatch!.BatchId); // 10 records a batch: batches 0-3
        Assert.False(status.Recovery!.Restored); // a new checkpoint
        Assert.Equal(HealthStatus.Healthy, (await HealthAsync(host, PipelineHealthCheckExtensions.LiveTag)).Status);
        Assert.Equal(HealthStatus.Healthy, (await HealthAsync(host, PipelineHealthCheckExtensions.ReadyTag)).Status);

        await host.StopAsync();
        Assert.Equal(PipelineRunPhase.Stopped, registry.StatusOf("hosted-totals").Phase);
        Assert.Equal(new long[] { 1, 2, 3 }, registry.RecentBatches("hosted-totals").Select(b => b.BatchId)); // the latest 3
        var logged = Directory.GetFiles(dir.Sub("progress")).SelectMany(File.ReadLines).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(new long[] { 0, 1, 2, 3 }, logged.Select(l => l.GetProperty("batch").GetInt64()));
        Assert.Equal(35, logged.Sum(l => l.GetProperty("inputRecords").GetInt64()));
        Assert.Equal(Reference(input), sink.All);
        // The stop wrote a snapshot of the last committed batch, so the next start restores without deltas.
        Assert.True(File.Exists(Path.Combine(dir.Sub("checkpoint"), "state", "0000000000000000003")), "no final snapshot of batch 3");

        // A second host on the same checkpoint continues where the first stopped.
        var more = Input(50).Skip(35).ToList();
        source.Add(0, more);
        using var again = Build(Settings(dir), source, sink);
        await again.StartAsync();
        await Eventually.UntilAsync(() => sink.All.Count == 50, TimeSpan.FromSeconds(30), "the next 15 records delivered");
        // The second run's status says what its recovery did: the final snapshot of batch 3, nothing to re-run.
        var recovery = again.Services.GetRequiredService<PipelineRegistry>().StatusOf("hosted-totals").Recovery!;
        Assert.Equal((true, 3L, 0L, 0L, 3L, false), (recovery.Restored, recovery.FromSnapshotBatch, recovery.BatchesFromDeltas, recovery.BatchesReplayed, recovery.LastCommittedBatch, recovery.TookOver));
        await again.StopAsync();
        Assert.Equal(Reference(Input(50)), sink.All);
    }

    [Fact]
    public async Task An_available_now_run_stops_the_host_when_its_input_is_processed()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Tap>();
        source.Add(0, Input(25));
        var sink = new KeepingSink();
        using var host = Build(Settings(dir, ("Pipeline:Trigger", "AvailableNow")), source, sink);
        var run = host.RunAsync();
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30))));
        await run;
        Assert.Equal(Reference(Input(25)), sink.All);
        Assert.Equal(0, Environment.ExitCode);
    }

    [Fact]
    public async Task Readiness_fails_while_a_partition_lags_more_than_the_configured_bound()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Tap>();
        source.Add(0, Input(35));
        var release = new TaskCompletionSource();
        var sink = new KeepingSink { BeforeWrite = batch => batch == 1 ? release.Task : Task.CompletedTask };
        using var host = Build(Settings(dir, ("Pipeline:ReadyMaxLag", "5")), source, sink);
        var registry = host.Services.GetRequiredService<PipelineRegistry>();

        await host.StartAsync();
        try
        {
            // Batch 0 read [0, 10) of 35 records: 25 behind. Batch 1 is held in the sink, so batch 0 is the last one.
            await Eventually.UntilAsync(() => registry.StatusOf("hosted-totals").LastBatch?.BatchId == 0, TimeSpan.FromSeconds(30), "batch 0 committed");
            var lagging = await HealthAsync(host, PipelineHealthCheckExtensions.ReadyTag);
            Assert.Equal(HealthStatus.Unhealthy, lagging.Status);
            Assert.Contains("is behind its sources after batch 0 (ReadyMaxLag 5): taps/0 lags 25", lagging.Entries["pipelines-ready"].Description);
            Assert.Equal(HealthStatus.Healthy, (await HealthAsync(host, PipelineHealthCheckExtensions.LiveTag)).Status); // lagging is not dead
        }
        finally
        {
            release.SetResult();
        }

        // Caught up: the last batch read [30, 35), nothing left behind.
        await Eventually.UntilAsync(() => sink.All.Count == 35, TimeSpan.FromSeconds(30), "all 35 records delivered");
        await Eventually.UntilAsync(() => registry.StatusOf("hosted-totals").LastBatch?.BatchId == 3, TimeSpan.FromSeconds(30), "batch 3 committed");
        Assert.Equal(HealthStatus.Healthy, (await HealthAsync(host, PipelineHealthCheckExtensions.ReadyTag)).Status);
        await host.StopAsync();
        Assert.Equal(Reference(Input(35)), sink.All);
    }

    [Theory]
    [InlineData("Pipeline:CheckpointInterval", "0", "Pipeline:CheckpointInterval is 0")]
    [InlineData("Pipeline:CheckpointIntervall", "5", "'Pipeline:CheckpointIntervall' of pipeline 'hosted-totals' is not an option")]
    [InlineData("Pipeline:CheckpointInterval", "ten", "Pipeline:CheckpointInterval")]
    [InlineData("Pipeline:CheckpointDirectory", null, "Pipeline:CheckpointDirectory is not set")]
    [InlineData("Pipeline:LivenessTimeout", "-00:00:01", "Pipeline:LivenessTimeout is -00:00:01")]
    [InlineData("Pipeline:Trigger", "Sometimes", "Pipeline:Trigger")]
    [InlineData("Pipeline:ReadyMaxLag", "-1", "Pipeline:ReadyMaxLag is -1")]
    public async Task A_configuration_error_stops_the_start_with_a_message_naming_the_key(string key, string? value, string expected)
    {
        using var dir = new TempDir();
        var settings = Settings(dir, (key, value));
        if (value is null) settings.Remove(key);
        using var host = Build(settings, new MemorySource<Tap>(), new KeepingSink());
        var error = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());
        Assert.Contains(expected, error.Message);
        Assert.False(Directory.Exists(dir.Sub("checkpoint")), "a rejected configuration created the checkpoint");
    }

    [Fact]
    public async Task A_failed_run_stops_the_host_with_exit_code_1_and_the_health_checks_say_why()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Tap>();
        source.Add(0, Input(5));
        var sink = new KeepingSink { Fail = true };
        using var host = Build(Settings(dir), source, sink);
        try
        {
            await host.StartAsync();
            var stopped = host.WaitForShutdownAsync(); // RunAsync would dispose the services this test reads after
            Assert.Same(stopped, await Task.WhenAny(stopped, Task.Delay(TimeSpan.FromSeconds(30))));
            Assert.Equal(1, Environment.ExitCode);
            var status = host.Services.GetRequiredService<PipelineRegistry>().StatusOf("hosted-totals");
            Assert.Equal(PipelineRunPhase.Failed, status.Phase);
            Assert.Contains("the test's sink refuses batch 0", status.Error);
            var live = await HealthAsync(host, PipelineHealthCheckExtensions.LiveTag);
            Assert.Equal(HealthStatus.Unhealthy, live.Status);
            Assert.Contains("pipeline 'hosted-totals' failed", live.Entries["pipelines-live"].Description);
        }
        finally
        {
            Environment.ExitCode = 0;
        }
    }

    /// <summary>A clock ahead of the real one by a set amount: the loop's last poll looks that old to the health check.</summary>
    private sealed class AheadClock(TimeSpan ahead) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + ahead;
    }

    [Fact]
    public async Task Liveness_fails_when_the_loop_has_not_polled_for_longer_than_the_timeout()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Tap>();
        using var host = Build(Settings(dir, ("Pipeline:LivenessTimeout", "00:01:00")), source, new KeepingSink(),
            services => services.AddSingleton<TimeProvider>(new AheadClock(TimeSpan.FromMinutes(2))));
        await host.StartAsync();
        try
        {
            var registry = host.Services.GetRequiredService<PipelineRegistry>();
            await Eventually.UntilAsync(() => registry.StatusOf("hosted-totals").Phase == PipelineRunPhase.Running, TimeSpan.FromSeconds(30), "running");
            var live = await HealthAsync(host, PipelineHealthCheckExtensions.LiveTag);
            Assert.Equal(HealthStatus.Unhealthy, live.Status);
            Assert.Contains("has not polled its sources for 120 s (LivenessTimeout 60 s)", live.Entries["pipelines-live"].Description);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task A_standby_host_is_live_and_reports_degraded_readiness_until_it_takes_over()
    {
        using var dir = new TempDir();
        var source = new MemorySource<Tap>();
        source.Add(0, Input(20));
        var activeSink = new KeepingSink();
        var standbySink = new KeepingSink();
        using var active = Build(Settings(dir), source, activeSink);
        await active.StartAsync();
        await Eventually.UntilAsync(() => activeSink.All.Count == 20, TimeSpan.FromSeconds(30), "the active delivered its input");

        using var standby = Build(Settings(dir, ("Pipeline:Standby", "true")), source, standbySink);
        await standby.StartAsync();
        var registry = standby.Services.GetRequiredService<PipelineRegistry>();
        await Eventually.UntilAsync(() => registry.StatusOf("hosted-totals").Phase == PipelineRunPhase.Standby, TimeSpan.FromSeconds(30), "standing by");
        Assert.Equal(HealthStatus.Healthy, (await HealthAsync(standby, PipelineHealthCheckExtensions.LiveTag)).Status);
        var ready = await HealthAsync(standby, PipelineHealthCheckExtensions.ReadyTag);
        Assert.Equal(HealthStatus.Degraded, ready.Status);
        Assert.Contains("hot standby", ready.Entries["pipelines-ready"].Description);

        await active.StopAsync();
        await Eventually.UntilAsync(() => registry.StatusOf("hosted-totals").Phase == PipelineRunPhase.Running, TimeSpan.FromSeconds(30), "the standby took over");
        source.Add(0, Input(30).Skip(20));
        await Eventually.UntilAsync(() => standbySink.All.Count == 10, TimeSpan.FromSeconds(30), "the new active delivered the next records");
        await standby.StopAsync();
        Assert.Equal(Reference(Input(30)).Skip(20), standbySink.All);
        Assert.Equal(HealthStatus.Unhealthy, (await HealthAsync(standby, PipelineHealthCheckExtensions.ReadyTag)).Status); // stopped
    }
}

/// <summary>Tests that read or set the process's exit code run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ExitCodeCollection
{
    public const string Name = "exit code";
}
