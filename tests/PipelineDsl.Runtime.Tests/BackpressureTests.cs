using PipelineDsl.Execution;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// Backpressure: the PID rate controller against figures worked out by hand from its formula, the budget shared between
/// partitions, and a real run whose sink is slow, where batches shrink to what one interval can process instead of the
/// first batch swallowing the whole backlog.
/// </summary>
public class BackpressureTests(ITestOutputHelper log)
{
    private static readonly BackpressureOptions Defaults = new();

    [Fact]
    public void The_controller_starts_at_the_initial_rate_then_follows_the_measured_rate_less_a_fifth_of_the_backlog()
    {
        var rate = new RateController(new BackpressureOptions { InitialRecordsPerSecond = 5_000 }, TimeSpan.FromSeconds(1));
        Assert.Equal(5_000, rate.Limit);
        Assert.Equal(5_000, rate.BatchBudget); // the limit times the one-second interval

        // The first measurement is used as it is: 1,000 records in 0.5 s.
        rate.BatchCompleted(TimeSpan.FromSeconds(10), 1_000, TimeSpan.FromSeconds(0.5), TimeSpan.Zero);
        Assert.Equal(2_000, rate.Limit, 6);

        // Then: 1,000 records in 1 s (1,000/s), started 0.5 s late. error = 2,000 - 1,000; backlog term = 0.5 * 1,000 / 1.
        // 2,000 - 1 * 1,000 - 0.2 * 500 = 900.
        rate.BatchCompleted(TimeSpan.FromSeconds(11), 1_000, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(0.5));
        Assert.Equal(900, rate.Limit, 6);

        // A batch without records, or at the same instant, changes nothing.
        rate.BatchCompleted(TimeSpan.FromSeconds(12), 0, TimeSpan.FromSeconds(1), TimeSpan.Zero);
        rate.BatchCompleted(TimeSpan.FromSeconds(11), 5_000, TimeSpan.FromSeconds(1), TimeSpan.Zero);
        Assert.Equal(900, rate.Limit, 6);

        // Never below the minimum: 10 records in 1 s, very late.
        rate.BatchCompleted(TimeSpan.FromSeconds(13), 10, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        Assert.Equal(Defaults.MinRecordsPerSecond, rate.Limit, 6);
    }

    [Fact]
    public void The_derivative_term_weighs_how_fast_the_error_changes()
    {
        var rate = new RateController(new BackpressureOptions { Proportional = 0.5, Integral = 0, Derivative = 0.1 }, TimeSpan.FromMilliseconds(500));
        rate.BatchCompleted(TimeSpan.FromSeconds(1), 4_000, TimeSpan.FromSeconds(1), TimeSpan.Zero); // limit 4,000, error 0
        // 3,000/s measured 2 s later: error = 1,000, its change 1,000 / 2 s = 500/s. 4,000 - 0.5 * 1,000 - 0.1 * 500 = 3,450.
        rate.BatchCompleted(TimeSpan.FromSeconds(3), 3_000, TimeSpan.FromSeconds(1), TimeSpan.Zero);
        Assert.Equal(3_450, rate.Limit, 6);
        Assert.Equal(1_725, rate.BatchBudget); // 3,450/s for half a second
    }

    [Fact]
    public void The_budget_is_shared_equally_between_sources_and_by_backlog_between_a_sources_partitions()
    {
        var open = new List<(string, string, long, long)>
        {
            ("a", "0", 0, 300),     // backlog 300
            ("a", "1", 1_000, 1_100), // backlog 100
            ("b", "0", 50, 1_000_050),
            ("c", "0", 0, 1),       // a tiny backlog still gets its one record
            ("c", "1", 0, 1_000_000),
        };
        var shares = BatchPlanner.ShareBudget(open, 900);
        Assert.Equal(new long[] { 225, 75, 300, 1, 299 }, shares);
    }

    [Fact]
    public void Options_that_cannot_work_are_refused_naming_the_option()
    {
        var noInterval = new PipelineRunnerOptions { CheckpointDirectory = "x", BatchInterval = TimeSpan.Zero, Backpressure = new() };
        Assert.Contains("BatchInterval", Assert.Throws<ArgumentException>(noInterval.Validate).Message);
        var badMin = new PipelineRunnerOptions { CheckpointDirectory = "x", Backpressure = new() { MinRecordsPerSecond = 0 } };
        Assert.Contains("MinRecordsPerSecond", Assert.Throws<ArgumentException>(badMin.Validate).Message);
        var badInitial = new PipelineRunnerOptions { CheckpointDirectory = "x", Backpressure = new() { InitialRecordsPerSecond = double.NaN } };
        Assert.Contains("InitialRecordsPerSecond", Assert.Throws<ArgumentException>(badInitial.Validate).Message);
        var negative = new PipelineRunnerOptions { CheckpointDirectory = "x", Backpressure = new() { Integral = -1 } };
        Assert.Contains("Integral", Assert.Throws<ArgumentException>(negative.Validate).Message);
    }

    /// <summary>A sink that takes 1 ms of wall time per 50 records (50,000 records/s), whatever the machine's load.</summary>
    private sealed class SlowSink : ISinkConnector<string>
    {
        public List<string> All { get; } = new();

        public Task WriteBatchAsync(long batchId, IReadOnlyList<string> records, CancellationToken cancellationToken)
        {
            Thread.Sleep(records.Count / 50);
            lock (All) All.AddRange(records);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task With_a_backlog_and_a_slow_sink_batches_shrink_to_what_one_interval_can_process()
    {
        using var dir = new TempDir();
        const int records = 150_000;
        var source = new MemorySource<string>();
        source.Add(0, Enumerable.Range(0, records).Select(i => "line " + i));
        var sink = new SlowSink();
        var batches = new List<BatchProgress>();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var options = new PipelineRunnerOptions
        {
            CheckpointDirectory = dir.Sub("checkpoint"),
            BatchInterval = TimeSpan.FromMilliseconds(100),
            Backpressure = new BackpressureOptions { InitialRecordsPerSecond = 1_000 },
        };
        var runner = new PipelineRunner(SocketLines.Definition, options).BindSource(SocketLines.Lines(), source).BindSink(SocketLines.Out(), sink);
        // The gauge reports the limit each batch was planned under, as its progress record says.
        var gaugeMismatches = new List<string>();
        double? gauge = null;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "PipelineDsl" && instrument.Name == "pipelinedsl.backpressure.rate_limit") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag is { Key: "pipeline", Value: "socket-lines" }) gauge = value;
        });
        listener.Start();
        runner.BatchCompleted += p =>
        {
            gauge = null;
            listener.RecordObservableInstruments();
            if (gauge != p.RateLimit) gaugeMismatches.Add($"batch {p.BatchId}: gauge {gauge}, progress {p.RateLimit}");
            if (!p.ToJson().Contains($"\"rateLimitRecordsPerSecond\":{Math.Round(p.RateLimit!.Value, 1).ToString(System.Globalization.CultureInfo.InvariantCulture)}")) gaugeMismatches.Add($"batch {p.BatchId}: JSON {p.ToJson()}");
            lock (batches) batches.Add(p);
            if (sink.All.Count >= records) stop.Cancel();
        };
        await runner.RunAsync(stop.Token);

        foreach (var b in batches)
            log.WriteLine($"batch {b.BatchId}: {b.InputRecords} records in {b.Duration.TotalMilliseconds:F0} ms ({string.Join(", ", b.Phases.Select(p => $"{p.Key} {p.Value.TotalMilliseconds:F0}"))}), limit {b.RateLimit:F0}/s, late {b.SchedulingDelay.TotalMilliseconds:F0} ms");
        Assert.Equal(Enumerable.Range(0, records).Select(i => "line " + i), sink.All); // nothing lost or repeated
        Assert.Empty(gaugeMismatches);

        // The first batch runs at the initial rate: 1,000/s for 100 ms. Without backpressure it would read all 150,000.
        Assert.Equal(1_000, batches[0].RateLimit);
        Assert.True(batches[0].InputRecords <= 100, $"the first batch read {batches[0].InputRecords} records, more than its budget of 100");

        // Then the limit follows the sink's 50,000/s: about 5,000 records per 100 ms batch, never the whole backlog.
        // (Bounds are loose: a loaded machine adds time to every batch, which only lowers the limit.)
        var later = batches.Skip(3).Where(b => b.InputRecords > 0).ToList();
        Assert.NotEmpty(later);
        Assert.All(later, b => Assert.True(b.InputRecords <= 5_000 * 3, $"batch {b.BatchId} read {b.InputRecords} records: more than three intervals' work at the sink's rate"));
        Assert.All(later, b => Assert.True(b.RateLimit <= 50_000 * 1.5, $"batch {b.BatchId} was planned at {b.RateLimit:F0} records/s, above what the sink can take"));
        double medianMs = later.Select(b => b.Duration.TotalMilliseconds).Order().ElementAt(later.Count / 2);
        Assert.True(medianMs <= 100 * 2.5, $"the median batch took {medianMs:F0} ms against an interval of 100 ms: batches do not keep up");
    }
}
