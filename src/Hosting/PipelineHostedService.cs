using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PipelineDsl.Hosting;

/// <summary>
/// Runs one pipeline for the life of the host. A host stop (SIGTERM, Ctrl+C, <c>StopApplication</c>) asks the run to
/// stop: the current batch finishes and commits and a snapshot is written, within the host's shutdown timeout; if the
/// timeout passes first the process ends mid-batch, which is safe (the batch re-runs from its logged ranges on restart).
/// </summary>
internal sealed partial class PipelineHostedService : BackgroundService
{
    private readonly PipelineRegistration _registration;
    private readonly IServiceProvider _services;
    private readonly PipelineRunnerOptions _options;
    private readonly PipelineServiceOptions _serviceOptions;
    private readonly PipelineRegistry _registry;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _log;

    public PipelineHostedService(PipelineRegistration registration, IServiceProvider services, PipelineRunnerOptions options, PipelineServiceOptions serviceOptions,
                                 PipelineRegistry registry, IHostApplicationLifetime lifetime, ILogger log)
    {
        _registration = registration;
        _services = services;
        _options = options;
        _serviceOptions = serviceOptions;
        _registry = registry;
        _lifetime = lifetime;
        _log = log;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield(); // the host's start goes on while the pipeline recovers
        string id = _registration.PipelineId;
        try
        {
            var runner = new PipelineRunner(_registration.Definition, _options);
            foreach (var bind in _registration.Binds) bind(_services, runner);
            _registry.Attach(id, runner, _serviceOptions, _options);
            using var progressLog = _serviceOptions.ProgressLogDirectory is { Length: > 0 } directory ? new BatchProgressLog(directory) : null;
            if (progressLog is not null) runner.BatchCompleted += progressLog.Append;
            runner.BatchCompleted += batch => LogBatch(batch);
            runner.StandbyProgressed += progress =>
            {
                if (progress.TookOver) TookOver(id, progress.FollowedThroughBatch ?? -1, progress.Waited.TotalSeconds);
            };
            Starting(id, _options.CheckpointStore?.Location ?? _options.CheckpointDirectory ?? "", _options.Trigger, _options.Standby);

            var summary = await runner.RunAsync(stoppingToken).ConfigureAwait(false);
            Stopped(id, summary.Restored, summary.RestoredFromBatch ?? -1, summary.BatchesFromDeltas, summary.BatchesReplayed, summary.RecoveryTime.TotalMilliseconds,
                summary.BatchesRun, summary.InputRecords, summary.LastCommittedBatch, summary.FinalSnapshotBatch ?? -1);
            if (_options.Trigger == TriggerMode.AvailableNow && _serviceOptions.StopApplicationWhenDone && !stoppingToken.IsCancellationRequested)
                _lifetime.StopApplication();
        }
        catch (Exception e)
        {
            // The host stops with exit code 1 and the error logged once, naming the pipeline; the next start recovers.
            Failed(id, e.Message, e);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
        }
    }

    private void LogBatch(BatchProgress batch)
    {
        if (batch.Replayed) Replayed(_registration.PipelineId, batch.BatchId);
        else if (batch.InputRecords == 0 && batch.OutputRecords == 0) EmptyBatch(_registration.PipelineId, batch.BatchId, batch.Duration.TotalMilliseconds);
        else Batch(_registration.PipelineId, batch.BatchId, batch.InputRecords, batch.OutputRecords, batch.Duration.TotalMilliseconds, batch.StateKeys, batch.SnapshotWritten, batch.DeadLetters, batch.LateRecords);
    }

    [LoggerMessage(1, LogLevel.Information, "Pipeline {Pipeline} starting: checkpoint {Checkpoint}, trigger {Trigger}, standby {Standby}")]
    private partial void Starting(string pipeline, string checkpoint, TriggerMode trigger, bool standby);

    [LoggerMessage(2, LogLevel.Information, "Pipeline {Pipeline} batch {Batch}: {InputRecords} records in, {OutputRecords} out in {DurationMs:F0} ms; {StateKeys} keys in state; snapshot {Snapshot}; {DeadLetters} dead letters, {LateRecords} late")]
    private partial void Batch(string pipeline, long batch, long inputRecords, long outputRecords, double durationMs, long stateKeys, bool snapshot, long deadLetters, long lateRecords);

    [LoggerMessage(3, LogLevel.Debug, "Pipeline {Pipeline} batch {Batch}: no records ({DurationMs:F0} ms)")]
    private partial void EmptyBatch(string pipeline, long batch, double durationMs);

    [LoggerMessage(4, LogLevel.Debug, "Pipeline {Pipeline} batch {Batch} replayed to rebuild state (sinks skipped)")]
    private partial void Replayed(string pipeline, long batch);

    [LoggerMessage(5, LogLevel.Information, "Pipeline {Pipeline} took the checkpoint over as a standby after {WaitedSeconds:F1} s, with state through batch {Batch}")]
    private partial void TookOver(string pipeline, long batch, double waitedSeconds);

    [LoggerMessage(6, LogLevel.Information, "Pipeline {Pipeline} stopped: restored {Restored} (snapshot {Snapshot}, {FromDeltas} batch deltas, {Replayed} batches replayed, in {RecoveryMs:F0} ms); ran {Batches} batches, {InputRecords} records; last committed batch {LastCommitted}; final snapshot {FinalSnapshot}")]
    private partial void Stopped(string pipeline, bool restored, long snapshot, long fromDeltas, long replayed, double recoveryMs, long batches, long inputRecords, long lastCommitted, long finalSnapshot);

    [LoggerMessage(7, LogLevel.Critical, "Pipeline {Pipeline} failed: {Error}")]
    private partial void Failed(string pipeline, string error, Exception exception);
}
