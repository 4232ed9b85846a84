using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;
using PipelineDsl.Graph;
using PipelineDsl.Sources;
using PipelineDsl.State;

namespace PipelineDsl.Execution;

/// <summary>
/// One call to <see cref="PipelineRunner.RunAsync"/>: recovers, then loops plan → log offsets → read → compute
/// → (offsets durable) → sinks → commit, and a snapshot every <c>CheckpointInterval</c> batches. Data flows
/// one way: the <see cref="BatchPlanner"/> owns positions and plans, the executors compute, the sinks
/// deliver, the <see cref="CheckpointCoordinator"/> makes the batch durable.
/// </summary>
internal sealed class MicroBatchDriver : IDisposable
{
    private readonly PipelineDefinition _definition;
    private readonly PipelineRunnerOptions _options;
    private readonly ICheckpointStore _store;
    private readonly CancellationToken _stop;
    private readonly Action<BatchProgress>? _batchCompleted;
    private readonly RunStatusTracker? _status;
    private readonly OperatorExecutor[] _executors;
    private readonly List<(string Id, ISourceExecutor Executor)> _sourceExecutors;
    private readonly SinkExecutorBase[] _sinkExecutors;
    private readonly StatefulOperators _state;
    private readonly BatchPlanner _planner;
    private readonly CheckpointCoordinator _checkpoint;
    private readonly RecoveryPlanner _recovery;
    private readonly List<string> _deadLetters = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly PipelineMetrics _metrics;

    // The current batch's phase durations, for its progress record; and when the previous batch started (for its input rate).
    private readonly Dictionary<string, TimeSpan> _phases = new(StringComparer.Ordinal);
    private TimeSpan? _previousBatchStarted;
    private TimeSpan _schedulingDelay;

    // Backpressure (null when off), and the limit the batch being run was planned under.
    private readonly RateController? _rate;
    private double? _plannedRateLimit;

    public MicroBatchDriver(
        PipelineDefinition definition,
        PipelineRunnerOptions options,
        IReadOnlyDictionary<string, object> sources,
        IReadOnlyDictionary<string, object> sinks,
        ICheckpointStore store,
        Action<BatchProgress>? batchCompleted,
        CancellationToken stop,
        RunStatusTracker? status = null)
    {
        _definition = definition;
        _metrics = new PipelineMetrics(definition.PipelineId);
        _options = options;
        _store = store;
        _stop = stop;
        _batchCompleted = batchCompleted;
        _status = status;
        var factory = new ExecutorFactory(sources, sinks, options.Parallelism) { StateBackend = options.StateBackend, PipelineId = definition.PipelineId };
        _executors = definition.Operators.Select(factory.Build).ToArray();
        OperatorFusion.Apply(_executors);
        _sourceExecutors = _executors.OfType<ISourceExecutor>().Select(e => (e.Node.Id, e)).ToList();
        _sinkExecutors = _executors.OfType<SinkExecutorBase>().OrderBy(s => s.Node.Id, StringComparer.Ordinal).ToArray();
        _state = new StatefulOperators(_executors.OfType<IStatefulExecutor>(), definition.Manifest, new SharedStateFiles(store));
        foreach (var (id, connector) in sources.Concat(sinks))
            (connector as IConnectorContextAware)?.Attach(new ConnectorContext(definition.PipelineId, id));

        var log = new CheckpointLog(store, definition.PipelineId) { Clock = options.Clock };
        if (options.NewCheckpointIdentity is { } identity) log.NewIdentity = identity;
        // Timed always (a clock read per file, next to a file write): a listener may attach at any time.
        log.FileWritten = _metrics.CheckpointFileWritten;
        _planner = new BatchPlanner(_sourceExecutors, sources, options.MaxRecordsPerPartition, options.Clock);
        if (options.Backpressure is { } backpressure) _rate = new RateController(backpressure, options.BatchInterval);
        var listeners = sources.Where(s => s.Value is ISourceCommitListener).Select(s => (s.Key, (ISourceCommitListener)s.Value));
        _checkpoint = new CheckpointCoordinator(log, _planner, _state, definition.Manifest.Json, options, listeners);
        _recovery = new RecoveryPlanner(log, _planner, _state, definition, plan => RunBatchAsync(plan, replay: true));
    }

    /// <summary>The executor of operator <paramref name="id"/>, for reading its state between batches; null when there is none.</summary>
    internal OperatorExecutor? Executor(string id) => _executors.FirstOrDefault(e => e.Node.Id == id);

    private bool HasTimeDependentOperators => _executors.Any(e => e.Node.AdvancesWithoutInput);

    /// <summary>A hot standby's step while another process holds the checkpoint: see <see cref="RecoveryPlanner.FollowAsync"/>.</summary>
    public Task<long?> FollowAsync(long? followedThrough) => _recovery.FollowAsync(followedThrough);

    /// <param name="followedThrough">The batch a hot standby's state is rebuilt through when it took the checkpoint over.</param>
    public async Task<RunSummary> ExecuteAsync(long? followedThrough = null)
    {
        _clock.Restart(); // a standby's wait before it took over is not part of this run's recovery or elapsed time
        var recovery = await _recovery.RecoverAsync(followedThrough).ConfigureAwait(false);
        if (recovery.Restored) _metrics.Recovered();
        if (followedThrough is not null) _metrics.TookOver();
        _status?.Recovered(new RecoveryProgress(recovery.Restored, recovery.SnapshotBatch, recovery.FromDeltas, recovery.Replayed, recovery.LastCommitted, _clock.Elapsed, followedThrough is not null));
        try
        {
            return await RunAsync(recovery).ConfigureAwait(false);
        }
        finally
        {
            _metrics.Stopped();
        }
    }

    private async Task<RunSummary> RunAsync(RecoveryResult recovery)
    {
        _checkpoint.LastSnapshotBatch = recovery.SnapshotBatch ?? -1;
        long next = recovery.LastCommitted + 1;
        long batchesRun = 0, inputRecords = 0;

        if (recovery.Pending is { } pending)
        {
            inputRecords += await RunBatchAsync(pending, replay: false).ConfigureAwait(false);
            batchesRun++;
            next = pending.BatchId + 1;
        }

        var recoveryTime = _clock.Elapsed;
        _status?.Enter(PipelineRunPhase.Running);
        RunTargets? targets = null;
        if (_options.Trigger == TriggerMode.AvailableNow) targets = await _planner.CaptureTargetsAsync().ConfigureAwait(false);

        // A new checkpoint runs its first batch even without input, to record where the sources start.
        bool positionsMoved = recovery.Fresh;
        TimeSpan? due = null;
        var stepper = _options.Stepper;
        while (!_stop.IsCancellationRequested)
        {
            // A test driver's run: one batch per step, empty or not.
            if (stepper is not null && !await stepper.WaitAsync(_stop).ConfigureAwait(false)) break;
            var started = _clock.Elapsed;
            _status?.Polled();
            _schedulingDelay = due is { } scheduled && started > scheduled ? started - scheduled : TimeSpan.Zero;
            if (due is not null) _metrics.Late(_schedulingDelay);
            _phases.Clear();
            long planStarted = PipelineMetrics.Start();
            _plannedRateLimit = _rate?.Limit;
            var plan = await _planner.PlanAsync(next, targets, _rate?.BatchBudget).ConfigureAwait(false);
            long planned = plan.Sources.Values.Sum(p => p.Values.Sum(r => r.Count));
            if (planned == 0 && !positionsMoved && stepper is null)
            {
                if (targets is not null) break; // available-now: everything is processed
                if (!HasTimeDependentOperators)
                {
                    due = null; // an idle wait is not a late batch
                    await DelayAsync(started).ConfigureAwait(false);
                    continue;
                }
            }

            long planned0 = _metrics.Phase("plan", planStarted, _phases);
            var offsetsWritten = _checkpoint.WriteOffsetsAsync(plan);
            positionsMoved = false;
            inputRecords += await RunBatchAsync(plan, replay: false, offsetsWritten, planStarted, planned0).ConfigureAwait(false);
            batchesRun++;
            next++;
            if (targets is null && stepper is null)
            {
                due = started + _options.BatchInterval;
                await DelayAsync(started).ConfigureAwait(false);
            }
        }

        long lastCommitted = next - 1;
        long? finalSnapshot = null;
        // A simulated crash leaves the checkpoint as the last commit left it: no final snapshot.
        bool crashed = stepper?.Crashed ?? false;
        if (!crashed && lastCommitted >= 0 && _checkpoint.LastSnapshotBatch != lastCommitted && _state.Count > 0)
        {
            _checkpoint.StartSnapshot(lastCommitted);
            finalSnapshot = lastCommitted;
        }

        await _checkpoint.FinishAsync().ConfigureAwait(false);
        var unread = targets is not null ? await _planner.UnreadTailsAsync().ConfigureAwait(false) : Array.Empty<UnreadTail>();

        return new RunSummary(recovery.Restored, recovery.SnapshotBatch, recovery.FromDeltas, recovery.Replayed, batchesRun, inputRecords, lastCommitted,
            recoveryTime, _clock.Elapsed, _state.KeyCount, finalSnapshot, unread);
    }

    /// <summary>After a failure: keeps the caller's lock until the checkpoint writes in flight have finished.</summary>
    public Task DrainQuietlyAsync() => _checkpoint.DrainQuietlyAsync();

    /// <summary>Closes what executors hold outside the heap (a state backend's database); after the checkpoint writes are done.</summary>
    public void Dispose()
    {
        foreach (var executor in _executors.OfType<IDisposable>()) executor.Dispose();
    }

    private async Task DelayAsync(TimeSpan started)
    {
        var wait = _options.BatchInterval - (_clock.Elapsed - started);
        if (wait <= TimeSpan.Zero) return;
        try
        {
            await Task.Delay(wait, _stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Runs one planned batch; returns the number of input records. <paramref name="planLogged"/>, when
    /// given, is the write of the batch's offsets, awaited before anything reaches a sink. A replay
    /// (a committed batch rebuilt during recovery) only recomputes state: its output was delivered already.
    /// </summary>
    private async Task<long> RunBatchAsync(OffsetRecord plan, bool replay, Task? planLogged = null, long batchStarted = 0, long phaseStarted = 0)
    {
        var started = _clock.Elapsed;
        if (batchStarted == 0)
        {
            _phases.Clear();
            batchStarted = PipelineMetrics.Start();
            phaseStarted = batchStarted;
        }

        var batch = new BatchContext(plan.BatchId, _options.Parallelism, _planner.FinishedSources(plan), plan.PlannedAtMs);
        foreach (var executor in _executors) executor.ClearOutput();
        _deadLetters.Clear();

        long input = 0;
        var readBySource = new List<(string Id, long Read)>(_sourceExecutors.Count);
        foreach (var (id, executor) in _sourceExecutors)
        {
            var ranges = plan.Sources.TryGetValue(id, out var r) ? r : new SortedDictionary<string, PartitionRange>();
            long read = await executor.ReadAsync(ranges, _options.BadRecordPolicy, _deadLetters, CancellationToken.None).ConfigureAwait(false);
            readBySource.Add((id, read));
            input += read;
            if (!replay) _metrics.Input(id, read);
        }

        _planner.Advance(plan);
        phaseStarted = _metrics.Phase("read", phaseStarted, _phases);

        foreach (var executor in _executors)
        {
            if (executor.Node.Kind is OperatorKind.Source or OperatorKind.Sink or OperatorKind.ForEachBatch) continue;
            try
            {
                executor.Execute(batch);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                var inner = e is AggregateException { InnerExceptions.Count: > 0 } a ? a.InnerExceptions[0] : e;
                // In a fused chain the failing function may belong to an operator before this one: name that one.
                var failed = executor.Node;
                if (inner is StageFailedException stage) (failed, inner) = (stage.Node, stage.InnerException!);
                throw new PipelineExecutionException($"Operator '{failed.Id}' failed in batch {plan.BatchId}: {inner.Message}", inner);
            }
        }

        phaseStarted = _metrics.Phase("execute", phaseStarted, _phases);
        string batchName = plan.BatchId.ToString(CultureInfo.InvariantCulture);
        if (planLogged is not null)
        {
            await planLogged.ConfigureAwait(false);
            FaultInjection.Hit("after-offsets", batchName);
            phaseStarted = _metrics.Phase("offsets", phaseStarted, _phases);
        }

        long output = 0;
        bool snapshot = false;
        if (!replay)
        {
            // A process paused past a takeover must not write output the new holder did not plan.
            await _store.ConfirmLockAsync(CancellationToken.None).ConfigureAwait(false);
            foreach (var sink in _sinkExecutors)
            {
                output += sink.InputCount;
                try
                {
                    await sink.DeliverAsync(plan.BatchId, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    throw new PipelineExecutionException($"Sink '{sink.Node.Id}' failed to write batch {plan.BatchId}: {e.Message} The batch is not committed and runs again on restart.", e);
                }

                _metrics.Output(sink.Node.Id, sink.InputCount);
            }

            if (_deadLetters.Count > 0) await WriteDeadLettersAsync(plan.BatchId).ConfigureAwait(false);
            _metrics.DeadLettered(_deadLetters.Count);
            FaultInjection.Hit("after-sinks", batchName);
            phaseStarted = _metrics.Phase("sink", phaseStarted, _phases);
            _checkpoint.StartCommit(new CommitRecord(plan.BatchId, _options.Clock.GetUtcNow().ToUnixTimeMilliseconds(), input));
            phaseStarted = _metrics.Phase("commit", phaseStarted, _phases);
            if (_state.Count > 0 && (plan.BatchId + 1) % _options.CheckpointInterval == 0)
            {
                await _checkpoint.SnapshotAsync(plan.BatchId).ConfigureAwait(false);
                snapshot = true;
                _metrics.Phase("snapshot", phaseStarted, _phases);
            }
        }

        var progress = Progress(plan, started, batchStarted, replay, snapshot, batch, input, output, readBySource);
        _metrics.BatchDone(batchStarted, replay, progress.StateOperators);
        _metrics.Watermarks(progress.Watermarks);
        if (!replay) _metrics.Lag(progress.Sources);
        if (!replay) _metrics.Rates(progress.InputRecordsPerSecond, progress.ProcessedRecordsPerSecond, progress.RateLimit);
        if (!replay) _rate?.BatchCompleted(_clock.Elapsed, input, progress.Duration, _schedulingDelay);
        _plannedRateLimit = null;
        if (!replay) _status?.BatchCommitted(progress);
        _batchCompleted?.Invoke(progress);
        return input;
    }

    /// <summary>The batch's progress record: its counts, phases, per-source ranges, per-sink records, state and watermarks.</summary>
    private BatchProgress Progress(OffsetRecord plan, TimeSpan started, long batchStarted, bool replay, bool snapshot, BatchContext batch, long input, long output, List<(string Id, long Read)> readBySource)
    {
        // From the start of its plan, as the phases and the batch.duration instrument count it.
        var duration = Stopwatch.GetElapsedTime(batchStarted);
        var sinceLast = _previousBatchStarted is { } previous ? started - previous : TimeSpan.Zero;
        if (!replay) _previousBatchStarted = started;
        return new BatchProgress(plan.BatchId, input, output, duration, _state.KeyCount, replay, snapshot, _deadLetters.Count, batch.LateRecords)
        {
            PipelineId = _definition.PipelineId,
            PlannedAt = DateTimeOffset.FromUnixTimeMilliseconds(plan.PlannedAtMs),
            Phases = new Dictionary<string, TimeSpan>(_phases, StringComparer.Ordinal),
            Sources = readBySource.Select(s => new SourceProgress(s.Id, s.Read,
                (plan.Sources.TryGetValue(s.Id, out var ranges) ? ranges : new SortedDictionary<string, PartitionRange>())
                .Select(p => new PartitionProgress(p.Key, p.Value.From, p.Value.To) { AvailablePosition = replay ? null : _planner.EndOf(s.Id, p.Key) }).ToArray())).ToArray(),
            Sinks = replay ? Array.Empty<SinkProgress>() : _sinkExecutors.Select(s => new SinkProgress(s.Node.Id, s.InputCount)).ToArray(),
            StateOperators = _state.Progress(plan.BatchId),
            Watermarks = _executors.OfType<IWatermark>().Where(w => w.Current != long.MinValue)
                .Select(w => new WatermarkProgress(((OperatorExecutor)w).Node.Id, w.Current)).ToArray(),
            InputRecordsPerSecond = sinceLast > TimeSpan.Zero ? input / sinceLast.TotalSeconds : 0,
            ProcessedRecordsPerSecond = duration > TimeSpan.Zero ? input / duration.TotalSeconds : 0,
            SchedulingDelay = replay ? TimeSpan.Zero : _schedulingDelay,
            RateLimit = replay ? null : _plannedRateLimit,
        };
    }

    /// <summary>
    /// Sets aside the batch's bad records, one JSON line each, before the batch commits: into
    /// <c>DeadLetterDirectory</c> when set, else into the checkpoint itself (<c>dead-letter/batch-N.jsonl</c>),
    /// through its store, so that they live wherever the checkpoint lives.
    /// </summary>
    private async Task WriteDeadLettersAsync(long batchId)
    {
        var text = new StringBuilder();
        foreach (var line in _deadLetters) text.Append(line).Append('\n');
        var content = Encoding.UTF8.GetBytes(text.ToString());
        string fileName = $"batch-{batchId:D10}.jsonl";
        if (_options.DeadLetterDirectory is { } directory)
            await DurableFile.WriteAsync(Path.Combine(directory, fileName), content, CancellationToken.None).ConfigureAwait(false);
        else
            await _store.WriteAsync("dead-letter/" + fileName, content, durable: true, CancellationToken.None).ConfigureAwait(false);
    }
}
