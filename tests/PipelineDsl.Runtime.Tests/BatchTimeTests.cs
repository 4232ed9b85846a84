using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

/// <summary>Stamps each number with its batch's processing time; the filter after the map fuses with it.</summary>
[Pipeline("batch-time-stamps")]
public static partial class BatchTimeStamps
{
    [Source("numbers")]
    public static partial Source<long> Numbers();

    [Map("stamped", From = "numbers")]
    public static (long N, long Time) Stamp(long n, BatchTime time) => (n, time.UnixMilliseconds);

    [Filter("kept", From = "stamped")]
    public static bool Kept((long N, long Time) s) => s.N % 7 != 3;

    [Sink("out", From = "kept")]
    public static partial Sink<(long N, long Time)> Out();
}

/// <summary>
/// <see cref="BatchTime"/>: every record of a batch sees the batch's planned time (alone, fused, in parallel), a batch
/// replayed after a failure sees the time logged with its plan however the clock moved, and the time never goes back
/// within a run when the clock is set back.
/// </summary>
public sealed class BatchTimeTests
{
    private sealed class SettableClock(long start) : TimeProvider
    {
        public long Now = start;

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Interlocked.Read(ref Now));
    }

    private sealed class Collect(long failOnBatch = -1) : ISinkConnector<(long N, long Time)>
    {
        public readonly SortedDictionary<long, List<(long N, long Time)>> Batches = new();
        private bool _failed;

        public Task WriteBatchAsync(long batchId, IReadOnlyList<(long N, long Time)> records, CancellationToken cancellationToken)
        {
            if (batchId == failOnBatch && !_failed)
            {
                _failed = true;
                throw new IOException("the sink is down");
            }

            lock (Batches) Batches[batchId] = records.ToList();
            return Task.CompletedTask;
        }
    }

    private static (PipelineRunner Runner, List<BatchProgress> Progress) Runner(string checkpoint, MemorySource<long> source, ISinkConnector<(long, long)> sink, TimeProvider clock, Action<BatchProgress>? after = null)
    {
        var progress = new List<BatchProgress>();
        var runner = new PipelineRunner(BatchTimeStamps.Definition, new PipelineRunnerOptions
        {
            CheckpointDirectory = checkpoint,
            Trigger = TriggerMode.AvailableNow,
            MaxRecordsPerPartition = 5_000,
            Parallelism = 2, // 10,000 records a batch: the fused chain runs in parallel chunks
            Clock = clock,
        }).BindSource(BatchTimeStamps.Numbers(), source).BindSink(BatchTimeStamps.Out(), sink);
        runner.BatchCompleted += p =>
        {
            progress.Add(p);
            after?.Invoke(p);
        };
        return (runner, progress);
    }

    private static MemorySource<long> Numbers(int count)
    {
        var source = new MemorySource<long>(2);
        for (long n = 0; n < count; n++) source.Add((int)(n % 2), new[] { n });
        return source;
    }

    [Fact]
    public async Task Every_record_of_a_batch_sees_its_planned_time_and_a_replayed_batch_the_logged_one()
    {
        using var dir = new TempDir();
        var clock = new SettableClock(1_800_000_000_000);
        var sink = new Collect(failOnBatch: 2);
        var (first, firstProgress) = Runner(dir.Sub("checkpoint"), Numbers(50_000), sink, clock, _ => clock.Now += 1_000);
        await Assert.ThrowsAsync<PipelineExecutionException>(() => first.RunAsync());
        Assert.Equal(new long[] { 0, 1 }, firstProgress.Select(p => p.BatchId));

        // An hour later the run restarts: batch 2 was planned (its offsets are logged) but not committed, so it runs again
        // with its logged time; the batches after it are planned now.
        clock.Now += 3_600_000;
        var (second, secondProgress) = Runner(dir.Sub("checkpoint"), Numbers(50_000), sink, clock, _ => clock.Now += 1_000);
        await second.RunAsync();

        // A batch reported twice (run, then replayed on recovery) reports one planned time.
        var planned = firstProgress.Concat(secondProgress).GroupBy(p => p.BatchId)
            .ToDictionary(g => g.Key, g => Assert.Single(g.Select(p => p.PlannedAt.ToUnixTimeMilliseconds()).Distinct()));
        Assert.Equal(5, sink.Batches.Count);
        foreach (var (batch, records) in sink.Batches)
        {
            Assert.NotEmpty(records);
            Assert.All(records, r => Assert.Equal(planned[batch], r.Time));
        }

        Assert.Equal(1_800_000_002_000, planned[2]); // planned before the failure, 2 s after the start: not an hour later
        Assert.True(planned[3] >= 1_800_003_600_000, $"batch 3 was planned at {planned[3]}, before the restart");
        Assert.Equal(Enumerable.Range(0, 50_000).Where(n => n % 7 != 3).Select(n => (long)n), sink.Batches.Values.SelectMany(r => r).Select(r => r.N).Order());
    }

    [Fact]
    public async Task A_clock_set_back_does_not_move_batch_time_back_within_a_run()
    {
        using var dir = new TempDir();
        var clock = new SettableClock(1_800_000_000_000);
        var sink = new Collect();
        // After each batch the clock goes back a minute (an NTP step, a VM restored from a snapshot).
        var (runner, progress) = Runner(dir.Sub("checkpoint"), Numbers(30_000), sink, clock, _ => clock.Now -= 60_000);
        await runner.RunAsync();

        var times = progress.Select(p => p.PlannedAt.ToUnixTimeMilliseconds()).ToList();
        Assert.Equal(3, times.Count);
        Assert.All(times, t => Assert.Equal(1_800_000_000_000, t));
        Assert.All(sink.Batches.Values.SelectMany(r => r), r => Assert.Equal(1_800_000_000_000, r.Time));
    }
}
