using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;
using PipelineDsl.Execution;
using PipelineDsl.Graph;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl;

/// <summary>
/// Runs a generated pipeline in micro-batches with exactly-once checkpoints. Bind every declared source and
/// sink to a connector, then <see cref="RunAsync"/>. A new checkpoint starts at the sources' initial
/// positions; an existing one is restored (newest valid snapshot, then an exact replay of the logged
/// batches after it, sinks skipped for batches already committed).
/// </summary>
/// <remarks>
/// The protocol for batch N: plan each source partition's range and write <c>offsets/N</c>; process exactly
/// those ranges; deliver to sinks with the batch id; write <c>commits/N</c>; every
/// <see cref="PipelineRunnerOptions.CheckpointInterval"/> batches write <c>state/N</c>.
/// </remarks>
public sealed class PipelineRunner
{
    private readonly PipelineDefinition _definition;
    private readonly PipelineRunnerOptions _options;
    private readonly Dictionary<string, object> _sources = new(StringComparer.Ordinal);
    private readonly Dictionary<string, object> _sinks = new(StringComparer.Ordinal);
    private readonly RunStatusTracker _status = new();

    /// <summary>The driver of the run in progress (a test driver reads operators' state through it between batches).</summary>
    internal MicroBatchDriver? ActiveDriver { get; private set; }

    /// <summary>Prepares a run of <paramref name="definition"/> (a generated <c>Definition</c>).</summary>
    public PipelineRunner(PipelineDefinition definition, PipelineRunnerOptions options)
    {
        _definition = definition ?? throw new ArgumentNullException(nameof(definition));
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>Where the run is, when the loop last polled its sources and the last batch it committed; safe to read from any thread.</summary>
    public PipelineRunStatus Status => _status.Current;

    /// <summary>Raised after each batch; handlers run on the driver's thread, so keep them short.</summary>
    public event Action<BatchProgress>? BatchCompleted;

    /// <summary>Binds a declared source to a connector.</summary>
    public PipelineRunner BindSource<T>(Source<T> source, ISourceConnector<T> connector)
    {
        if (source is null) throw new ArgumentNullException(nameof(source));
        CheckHandle(source.PipelineId, source.Id, OperatorKind.Source, "source");
        _sources[source.Id] = connector ?? throw new ArgumentNullException(nameof(connector));
        return this;
    }

    /// <summary>Binds a declared sink to a connector.</summary>
    public PipelineRunner BindSink<T>(Sink<T> sink, ISinkConnector<T> connector)
    {
        if (sink is null) throw new ArgumentNullException(nameof(sink));
        CheckHandle(sink.PipelineId, sink.Id, OperatorKind.Sink, "sink");
        _sinks[sink.Id] = connector ?? throw new ArgumentNullException(nameof(connector));
        return this;
    }

    private void CheckHandle(string pipelineId, string id, OperatorKind kind, string what)
    {
        if (pipelineId != _definition.PipelineId)
            throw new ArgumentException($"The {what} '{id}' belongs to pipeline '{pipelineId}', not '{_definition.PipelineId}'.");
        if (_definition.Operators.All(o => o.Id != id || o.Kind != kind))
            throw new ArgumentException($"Pipeline '{_definition.PipelineId}' has no {what} '{id}'.");
    }

    /// <summary>
    /// Runs until <paramref name="stopToken"/> is cancelled (continuous) or the available data is processed
    /// (available-now). A stop request lets the current batch finish and commit; the run then writes a
    /// snapshot so that the next start is quick. Killing the process instead is safe too: the next run
    /// re-runs the uncommitted batch with its logged ranges.
    /// </summary>
    public async Task<RunSummary> RunAsync(CancellationToken stopToken = default)
    {
        try
        {
            var summary = await RunCoreAsync(stopToken).ConfigureAwait(false);
            _status.Enter(PipelineRunPhase.Stopped);
            return summary;
        }
        catch (Exception e)
        {
            _status.Failed(e);
            throw;
        }
    }

    private async Task<RunSummary> RunCoreAsync(CancellationToken stopToken)
    {
        _status.Enter(PipelineRunPhase.Recovering);
        _options.Validate();
        var unbound = _definition.Operators
            .Where(o => (o.Kind == OperatorKind.Source && !_sources.ContainsKey(o.Id)) || (o.Kind == OperatorKind.Sink && !_sinks.ContainsKey(o.Id)))
            .Select(o => $"{(o.Kind == OperatorKind.Source ? "source" : "sink")} '{o.Id}'")
            .ToList();
        if (unbound.Count > 0)
            throw new InvalidOperationException($"Pipeline '{_definition.PipelineId}' has unbound {string.Join(", ", unbound)}: bind each with BindSource/BindSink before running.");

        // Every source answers once before the checkpoint is touched, so that a wrong input (a missing directory,
        // an unknown topic) fails without creating a checkpoint directory for a run that never started.
        var probes = new ExecutorFactory(_sources, _sinks, parallelism: 1);
        foreach (var node in _definition.Operators.Where(o => o.Kind == OperatorKind.Source))
            await ((ISourceExecutor)probes.Build(node)).ListAsync(stopToken).ConfigureAwait(false);

        var store = _options.CheckpointStore ?? new LocalDirectoryCheckpointStore(_options.CheckpointDirectory!);
        string owner = $"pipeline '{_definition.PipelineId}'";
        if (!_options.Standby)
        {
            using var checkpointLock = store.AcquireLock(owner);
            using var driver = ActiveDriver = new MicroBatchDriver(_definition, _options, _sources, _sinks, store, BatchCompleted, stopToken, _status);
            return await ExecuteAsync(driver, null).ConfigureAwait(false);
        }

        // A hot standby: follow the holder's commits until the checkpoint is ours, then continue from that state.
        using var standby = new MicroBatchDriver(_definition, _options, _sources, _sinks, store, BatchCompleted, stopToken, _status);
        var started = System.Diagnostics.Stopwatch.StartNew();
        long? followed = null;
        _status.Enter(PipelineRunPhase.Standby);
        while (true)
        {
            IDisposable? taken = null;
            try
            {
                taken = store.AcquireLock(owner);
            }
            catch (CheckpointLockedException)
            {
            }
            catch (CheckpointStoreUnavailableException)
            {
                // The store is down for longer than its limit: a standby has nothing to lose by waiting for it.
            }

            if (taken is not null)
            {
                using (taken)
                {
                    _status.Enter(PipelineRunPhase.Recovering);
                    StandbyProgressed?.Invoke(new StandbyProgress(followed, TookOver: true, started.Elapsed));
                    return await ExecuteAsync(standby, followed).ConfigureAwait(false);
                }
            }

            if (stopToken.IsCancellationRequested)
                return new RunSummary(false, null, 0, 0, 0, 0, followed ?? -1, TimeSpan.Zero, started.Elapsed, 0);
            long? now;
            try
            {
                now = await standby.FollowAsync(followed).ConfigureAwait(false);
            }
            catch (Exception e) when (e is CheckpointException and not CheckpointIncompatibleException || e is System.IO.IOException)
            {
                // The holder changed the checkpoint under this step (retention deleted a file it was reading):
                // start again from the newest snapshot on the next step. A build that cannot read the state fails.
                now = null;
            }

            _status.Polled();
            if (now != followed) StandbyProgressed?.Invoke(new StandbyProgress(now, TookOver: false, started.Elapsed));
            followed = now;
            try
            {
                await Task.Delay(_options.StandbyPollInterval, stopToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>Raised by a hot standby (<see cref="PipelineRunnerOptions.Standby"/>) when its followed state moves, and once when it takes the checkpoint over.</summary>
    public event Action<StandbyProgress>? StandbyProgressed;

    private static async Task<RunSummary> ExecuteAsync(MicroBatchDriver driver, long? followedThrough)
    {
        try
        {
            return await driver.ExecuteAsync(followedThrough).ConfigureAwait(false);
        }
        catch
        {
            // Keep the lock until a snapshot still being written has finished (its own failure is secondary).
            await driver.DrainQuietlyAsync().ConfigureAwait(false);
            throw;
        }
    }
}
