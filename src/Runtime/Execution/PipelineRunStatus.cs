using System;

namespace PipelineDsl;

/// <summary>Where a <see cref="PipelineRunner"/> is in its life (see <see cref="PipelineRunner.Status"/>).</summary>
public enum PipelineRunPhase
{
    /// <summary><see cref="PipelineRunner.RunAsync"/> has not been called yet.</summary>
    NotStarted,

    /// <summary>Checking the sources, taking the checkpoint's lock, restoring state and re-running an uncommitted batch.</summary>
    Recovering,

    /// <summary>A hot standby following another process's commits (<see cref="PipelineRunnerOptions.Standby"/>).</summary>
    Standby,

    /// <summary>Planning and running batches.</summary>
    Running,

    /// <summary>The run ended normally (stopped, or an available-now run processed its input).</summary>
    Stopped,

    /// <summary>The run ended with an error (<see cref="PipelineRunStatus.Error"/>).</summary>
    Failed,
}

/// <summary>A snapshot of a run's status, for health checks and dashboards.</summary>
/// <param name="Phase">Where the run is.</param>
/// <param name="LastPolledAt">
/// When the batch loop last looked for new input, whether or not it found any: a running loop moves this forward at
/// least once per batch interval (an idle pipeline runs no batches but still polls), so a value that stops moving
/// means a stuck loop or a batch that takes that long.
/// </param>
/// <param name="LastBatch">The last batch this run committed (recovery replays not included), or null.</param>
/// <param name="LastBatchAt">When <paramref name="LastBatch"/> committed.</param>
/// <param name="Error">Why the run failed, when <paramref name="Phase"/> is <see cref="PipelineRunPhase.Failed"/>.</param>
public sealed record PipelineRunStatus(PipelineRunPhase Phase, DateTimeOffset? LastPolledAt, BatchProgress? LastBatch, DateTimeOffset? LastBatchAt, string? Error)
{
    /// <summary>What this run's recovery did, once it is done (null before, and for a run that has not recovered yet).</summary>
    public RecoveryProgress? Recovery { get; init; }
}

/// <summary>What a run's recovery found and did, before its first new batch.</summary>
/// <param name="Restored">An existing checkpoint was continued (false: a new one was created).</param>
/// <param name="FromSnapshotBatch">The batch of the snapshot the state was restored from, if any.</param>
/// <param name="BatchesFromDeltas">Committed batches whose state came from their commit's state delta.</param>
/// <param name="BatchesReplayed">Committed batches re-run from their logged ranges (sinks skipped).</param>
/// <param name="LastCommittedBatch">The newest committed batch (-1: none).</param>
/// <param name="Duration">How long the recovery took.</param>
/// <param name="TookOver">A hot standby took the checkpoint over (its state was followed, not read from a snapshot).</param>
public sealed record RecoveryProgress(bool Restored, long? FromSnapshotBatch, long BatchesFromDeltas, long BatchesReplayed, long LastCommittedBatch, TimeSpan Duration, bool TookOver);

/// <summary>The one writer of a runner's <see cref="PipelineRunStatus"/>: each change publishes a new immutable snapshot.</summary>
internal sealed class RunStatusTracker
{
    private readonly TimeProvider _time;
    private volatile PipelineRunStatus _current = new(PipelineRunPhase.NotStarted, null, null, null, null);

    public RunStatusTracker(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    public PipelineRunStatus Current => _current;

    public void Enter(PipelineRunPhase phase) => _current = _current with { Phase = phase, LastPolledAt = _time.GetUtcNow() };

    public void Polled() => _current = _current with { LastPolledAt = _time.GetUtcNow() };

    public void BatchCommitted(BatchProgress batch)
    {
        var now = _time.GetUtcNow();
        _current = _current with { LastBatch = batch, LastBatchAt = now, LastPolledAt = now };
    }

    public void Recovered(RecoveryProgress recovery) => _current = _current with { Recovery = recovery };

    public void Failed(Exception error) => _current = _current with { Phase = PipelineRunPhase.Failed, Error = error.Message };
}
