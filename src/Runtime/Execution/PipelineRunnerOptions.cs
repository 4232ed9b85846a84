using System;
using System.Collections.Generic;
using PipelineDsl.Checkpointing;
using PipelineDsl.Sources;

namespace PipelineDsl;

/// <summary>How a run ends.</summary>
public enum TriggerMode
{
    /// <summary>Run a batch every <see cref="PipelineRunnerOptions.BatchInterval"/> until stopped.</summary>
    Continuous,

    /// <summary>
    /// Process everything available when the run starts, in as many batches as the per-partition cap
    /// needs, then stop (Spark's <c>Trigger.AvailableNow</c>).
    /// </summary>
    AvailableNow,
}

/// <summary>What happens to a record its source cannot decode.</summary>
public enum BadRecordPolicy
{
    /// <summary>The batch fails with an error naming the source, partition and position (the default).</summary>
    Fail,

    /// <summary>The record is written, with that context, to the dead-letter directory, and the batch goes on.</summary>
    DeadLetter,
}

/// <summary>Options of a <see cref="PipelineRunner"/>. Validated when the run starts; errors name the option.</summary>
public sealed class PipelineRunnerOptions
{
    /// <summary>The checkpoint directory (required unless <see cref="CheckpointStore"/> is set).</summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>
    /// Where keyed state lives while the pipeline runs: <see cref="StateBackend.InMemory"/> (the default), or
    /// <c>RocksDbStateBackend</c> (package PipelineDsl.RocksDb) for state larger than memory with incremental
    /// snapshots. A checkpoint is restored by the backend that wrote it (a snapshot of the in-memory backend is also
    /// loaded by RocksDB, to switch to it).
    /// </summary>
    public StateBackend StateBackend { get; set; } = StateBackend.Default;

    /// <summary>A checkpoint store to use instead of a local directory.</summary>
    public ICheckpointStore? CheckpointStore { get; set; }

    /// <summary>Time between the starts of batches in continuous mode (default 1 s).</summary>
    public TimeSpan BatchInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Continuous (default) or available-now.</summary>
    public TriggerMode Trigger { get; set; } = TriggerMode.Continuous;

    /// <summary>
    /// The most records one source partition contributes to one batch (null: no limit), so that a backlog
    /// after downtime is worked off in bounded batches.
    /// </summary>
    public long? MaxRecordsPerPartition { get; set; }

    /// <summary>
    /// Sizes each batch from the rate the pipeline processes records at, so that batches keep up with
    /// <see cref="BatchInterval"/> instead of growing with a backlog (Spark's <c>spark.streaming.backpressure.enabled</c>):
    /// null (the default) plans everything available, up to <see cref="MaxRecordsPerPartition"/>. With receivers this also
    /// slows the senders down, through the receivers' backlog bound. See <see cref="BackpressureOptions"/>.
    /// </summary>
    public BackpressureOptions? Backpressure { get; set; }

    /// <summary>A snapshot of all state is written every this many batches (default 10; Spark advises 5-10 batch intervals).</summary>
    public int CheckpointInterval { get; set; } = 10;

    /// <summary>
    /// When true (the default), every commit file also stores what its batch changed in keyed state, and
    /// recovery applies these deltas after the newest snapshot: the state is exactly the one the committed
    /// batches left, even when a new build of the pipeline restores it after a crash (see the upgrade rules).
    /// When false, state is checkpointed only by the snapshot every <see cref="CheckpointInterval"/> batches,
    /// as in Spark Streaming and Flink, and recovery re-reads the at most <see cref="CheckpointInterval"/> − 1
    /// committed batches after it from their logged source ranges and re-runs them without writing to the
    /// sinks. Both are exactly-once. Turning deltas off saves serializing every changed state entry in every
    /// batch (for joins that hold raw records, most of the pipeline's work), at the price of a longer recovery
    /// that needs the sources to replay those ranges, and of re-running them with the restoring build's code.
    /// </summary>
    public bool WriteStateDeltas { get; set; } = true;

    /// <summary>How many snapshots to keep (default 3); older snapshots and the logs only they need are deleted.</summary>
    public int RetainedSnapshots { get; set; } = 3;

    /// <summary>How many cores a batch may use (default: all).</summary>
    public int Parallelism { get; set; } = Environment.ProcessorCount;

    /// <summary>What to do with records a source cannot decode (default <see cref="BadRecordPolicy.Fail"/>).</summary>
    public BadRecordPolicy BadRecordPolicy { get; set; } = BadRecordPolicy.Fail;

    /// <summary>Where dead letters go (default: <c>dead-letter</c> inside the checkpoint directory).</summary>
    public string? DeadLetterDirectory { get; set; }

    /// <summary>
    /// Start as a hot standby: while another process holds the checkpoint, follow its commits (apply their state
    /// deltas as they appear, writing nothing) and take the checkpoint over when that process stops or fails,
    /// continuing from the state already rebuilt; instead of failing with <see cref="Checkpointing.CheckpointLockedException"/>.
    /// How fast a failed holder is detected is the store's: at once for a local directory (its lock is released
    /// with the process), after <c>TakeoverAfter</c> of silence for the Azure store. Default false.
    /// </summary>
    public bool Standby { get; set; }

    /// <summary>How often a standby looks for new commits and for a free checkpoint. Default 200 ms.</summary>
    public TimeSpan StandbyPollInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// The runtime's clock: the plan and commit times in the checkpoint, and so every batch's processing time
    /// (<see cref="BatchTime"/>, which a replayed batch reads back from its plan). Default <see cref="TimeProvider.System"/>.
    /// A test sets its own (a <c>FakeTimeProvider</c> it advances between batches) to make processing-time output exact
    /// run after run. Only timestamps come from it: trigger intervals and timeouts use real time.
    /// </summary>
    public TimeProvider Clock { get; set; } = TimeProvider.System;

    /// <summary>Makes a new checkpoint's identity (null: random).</summary>
    internal Func<string>? NewCheckpointIdentity { get; set; }

    /// <summary>When set, each batch waits for a step and runs even without input (a test driver's batches, one per call).</summary>
    internal Execution.BatchStepper? Stepper { get; set; }

    internal void Validate()
    {
        if (CheckpointStore is null && string.IsNullOrWhiteSpace(CheckpointDirectory))
            throw new ArgumentException("PipelineRunnerOptions.CheckpointDirectory is not set: give the directory where the pipeline keeps its checkpoint (or set CheckpointStore).");
        if (BatchInterval < TimeSpan.Zero) throw new ArgumentException($"PipelineRunnerOptions.BatchInterval is {BatchInterval}: it must be zero or positive.");
        if (MaxRecordsPerPartition is < 1) throw new ArgumentException($"PipelineRunnerOptions.MaxRecordsPerPartition is {MaxRecordsPerPartition}: it must be 1 or more, or null for no limit.");
        if (Backpressure is { } backpressure)
        {
            if (BatchInterval <= TimeSpan.Zero)
                throw new ArgumentException($"PipelineRunnerOptions.Backpressure sizes batches to take one BatchInterval, but BatchInterval is {BatchInterval}: set a positive interval, or turn backpressure off.");
            backpressure.Validate();
        }

        if (StateBackend is null) throw new ArgumentException("PipelineRunnerOptions.StateBackend is null: use StateBackend.InMemory or a RocksDbStateBackend.");
        if (Clock is null) throw new ArgumentException("PipelineRunnerOptions.Clock is null: use TimeProvider.System or a TimeProvider of your own.");
        StateBackend.Validate();

        if (CheckpointInterval < 1) throw new ArgumentException($"PipelineRunnerOptions.CheckpointInterval is {CheckpointInterval}: it must be 1 or more batches.");
        if (RetainedSnapshots < 1) throw new ArgumentException($"PipelineRunnerOptions.RetainedSnapshots is {RetainedSnapshots}: keep at least 1.");
        if (Parallelism < 1) throw new ArgumentException($"PipelineRunnerOptions.Parallelism is {Parallelism}: it must be 1 or more.");
        if (!Enum.IsDefined(Trigger)) throw new ArgumentException($"PipelineRunnerOptions.Trigger is {(int)Trigger}, which is not a TriggerMode.");
        if (StandbyPollInterval <= TimeSpan.Zero) throw new ArgumentException($"PipelineRunnerOptions.StandbyPollInterval is {StandbyPollInterval}: it must be positive.");
        if (!Enum.IsDefined(BadRecordPolicy)) throw new ArgumentException($"PipelineRunnerOptions.BadRecordPolicy is {(int)BadRecordPolicy}, which is not a BadRecordPolicy.");
    }
}

/// <summary>
/// How backpressure sizes batches (see <see cref="PipelineRunnerOptions.Backpressure"/>): after each batch, a PID controller
/// (Spark's <c>PIDRateEstimator</c>, with its defaults) sets a rate limit in records per second from the rate the batch was
/// processed at and how late it started; the next batch reads at most the limit times the batch interval, shared equally
/// between the sources that have data and, within a source, in proportion to each partition's backlog. The limit in force
/// is in each <see cref="BatchProgress.RateLimit"/> and the <c>pipelinedsl.backpressure.rate_limit</c> gauge.
/// </summary>
public sealed class BackpressureOptions
{
    /// <summary>The limit of the first batch, before any rate was measured (default 10,000 records/s; Spark's <c>initialRate</c>).</summary>
    public double InitialRecordsPerSecond { get; set; } = 10_000;

    /// <summary>The limit never goes below this (default 100 records/s; Spark's <c>pid.minRate</c>).</summary>
    public double MinRecordsPerSecond { get; set; } = 100;

    /// <summary>Weight of the difference between the limit and the measured rate (default 1).</summary>
    public double Proportional { get; set; } = 1.0;

    /// <summary>Weight of the backlog that made batches start late, in records per interval (default 0.2).</summary>
    public double Integral { get; set; } = 0.2;

    /// <summary>Weight of how fast the error changes (default 0).</summary>
    public double Derivative { get; set; }

    internal void Validate()
    {
        if (!(InitialRecordsPerSecond > 0) || double.IsInfinity(InitialRecordsPerSecond))
            throw new ArgumentException($"BackpressureOptions.InitialRecordsPerSecond is {InitialRecordsPerSecond}: it must be a positive number of records per second.");
        if (!(MinRecordsPerSecond > 0) || double.IsInfinity(MinRecordsPerSecond))
            throw new ArgumentException($"BackpressureOptions.MinRecordsPerSecond is {MinRecordsPerSecond}: it must be a positive number of records per second.");
        if (!(Proportional >= 0) || !(Integral >= 0) || !(Derivative >= 0) || double.IsInfinity(Proportional + Integral + Derivative))
            throw new ArgumentException($"BackpressureOptions: Proportional ({Proportional}), Integral ({Integral}) and Derivative ({Derivative}) must be finite and zero or more.");
    }
}

/// <summary>What a hot standby did (see <see cref="PipelineRunnerOptions.Standby"/>).</summary>
/// <param name="FollowedThroughBatch">The committed batch its state is rebuilt through; null until there is one to follow.</param>
/// <param name="TookOver">True once, when it took the checkpoint over and becomes the active run.</param>
/// <param name="Waited">Time since the run started.</param>
public sealed record StandbyProgress(long? FollowedThroughBatch, bool TookOver, TimeSpan Waited);

/// <summary>What one batch did; raised after it commits (or after it is replayed during recovery).</summary>
/// <param name="BatchId">The batch id.</param>
/// <param name="InputRecords">Records read from all sources.</param>
/// <param name="OutputRecords">Records delivered to all sinks.</param>
/// <param name="Duration">Wall time of the batch, from the start of its plan until its commit is started (the sum of its phases).</param>
/// <param name="StateKeys">Keys held by all stateful operators after the batch.</param>
/// <param name="Replayed">True when the batch was already committed and was re-run only to rebuild state (sinks skipped).</param>
/// <param name="SnapshotWritten">True when a state snapshot was written after the batch.</param>
/// <param name="DeadLetters">Records set aside by the dead-letter policy.</param>
/// <param name="LateRecords">Records event-time operators dropped because the watermark had already passed them.</param>
public sealed record BatchProgress(long BatchId, long InputRecords, long OutputRecords, TimeSpan Duration, long StateKeys, bool Replayed, bool SnapshotWritten, long DeadLetters, long LateRecords = 0)
{
    /// <summary>The pipeline's id.</summary>
    public string PipelineId { get; init; } = "";

    /// <summary>When the batch was planned (its offsets record's time).</summary>
    public DateTimeOffset PlannedAt { get; init; }

    /// <summary>
    /// Wall time of each phase of the batch: <c>plan</c>, <c>read</c>, <c>execute</c>, <c>offsets</c> (waiting for the
    /// plan to be durable), <c>sink</c>, <c>commit</c>, <c>snapshot</c> (absent when the batch did not have the phase).
    /// </summary>
    public IReadOnlyDictionary<string, TimeSpan> Phases { get; init; } = new Dictionary<string, TimeSpan>();

    /// <summary>What each source contributed: its records and each partition's planned range of positions.</summary>
    public IReadOnlyList<SourceProgress> Sources { get; init; } = Array.Empty<SourceProgress>();

    /// <summary>Records delivered to each sink (none for a replayed batch).</summary>
    public IReadOnlyList<SinkProgress> Sinks { get; init; } = Array.Empty<SinkProgress>();

    /// <summary>Keys held by each stateful operator after the batch.</summary>
    public IReadOnlyList<StateOperatorProgress> StateOperators { get; init; } = Array.Empty<StateOperatorProgress>();

    /// <summary>Each watermark stage's event-time watermark after the batch (Unix milliseconds), once it has one.</summary>
    public IReadOnlyList<WatermarkProgress> Watermarks { get; init; } = Array.Empty<WatermarkProgress>();

    /// <summary>Input records per second of wall time since the previous batch started (Spark's inputRowsPerSecond); 0 for the first.</summary>
    public double InputRecordsPerSecond { get; init; }

    /// <summary>How late the batch started against its batch interval (continuous trigger; zero otherwise): Spark's scheduling delay.</summary>
    public TimeSpan SchedulingDelay { get; init; }

    /// <summary>
    /// The backpressure rate limit this batch was planned under, in records per second (null: backpressure is off, or the
    /// batch was replayed): the batch read at most this times the batch interval.
    /// </summary>
    public double? RateLimit { get; init; }

    /// <summary>Input records per second of this batch's own duration (Spark's processedRowsPerSecond).</summary>
    public double ProcessedRecordsPerSecond { get; init; }

    /// <summary>This progress record as one line of JSON (the format of <see cref="BatchProgressLog"/> and of the hosted status API).</summary>
    public string ToJson() => BatchProgressJson.Write(this);
}

/// <summary>One source's part of a batch (see <see cref="BatchProgress.Sources"/>).</summary>
/// <param name="Source">The source's id.</param>
/// <param name="Records">Records read from it, bad ones included.</param>
/// <param name="Partitions">Each partition's planned range: from the start position (inclusive) to the end position (exclusive), in the source's own positions (lines, byte offsets, Kafka offsets).</param>
public sealed record SourceProgress(string Source, long Records, IReadOnlyList<PartitionProgress> Partitions);

/// <summary>One partition's planned range in a batch.</summary>
/// <param name="Partition">The partition's name.</param>
/// <param name="StartPosition">The first position read (inclusive).</param>
/// <param name="EndPosition">The position after the last one read.</param>
public sealed record PartitionProgress(string Partition, long StartPosition, long EndPosition)
{
    /// <summary>The position the partition's data reached when the batch was planned (null when the source did not list it).</summary>
    public long? AvailablePosition { get; init; }

    /// <summary>
    /// How far the data was ahead of this batch's end when it was planned, in the source's positions (records for Kafka
    /// and memory sources, bytes for files): the backlog a cap on batch size (or a slow pipeline) leaves behind.
    /// </summary>
    public long? Lag => AvailablePosition is long available ? Math.Max(0, available - EndPosition) : null;
}

/// <summary>Records one sink received in a batch.</summary>
/// <param name="Sink">The sink's id.</param>
/// <param name="Records">Records delivered.</param>
public sealed record SinkProgress(string Sink, long Records);

/// <summary>Keys one stateful operator holds after a batch, and the size of its state in the checkpoint.</summary>
/// <param name="OperatorId">The operator's id.</param>
/// <param name="Keys">Keys held.</param>
public sealed record StateOperatorProgress(string OperatorId, long Keys)
{
    /// <summary>
    /// What the batch wrote into this operator's state: keys updated (keyed state, sessions), key-panes (event-time
    /// windows) or records kept (stream joins); null for operators that do not count them (batch windows, watermarks).
    /// </summary>
    public long? Updated { get; init; }

    /// <summary>Bytes of this operator's state in the newest snapshot this run wrote (null: none yet).</summary>
    public long? SnapshotBytes { get; init; }

    /// <summary>Bytes of what this batch changed in this operator's state, as written into its commit file (null: no delta written, as for a replayed batch or with state deltas off).</summary>
    public long? DeltaBytes { get; init; }
}

/// <summary>One watermark stage's watermark after a batch.</summary>
/// <param name="OperatorId">The watermark stage's id.</param>
/// <param name="WatermarkMs">The watermark, Unix milliseconds: records older than this are late.</param>
public sealed record WatermarkProgress(string OperatorId, long WatermarkMs);

/// <summary>What a run did.</summary>
/// <param name="Restored">True when the run continued an existing checkpoint.</param>
/// <param name="RestoredFromBatch">The batch of the snapshot restored, if any.</param>
/// <param name="BatchesFromDeltas">Committed batches after the snapshot whose state was restored from their stored deltas.</param>
/// <param name="BatchesReplayed">Committed batches re-run to rebuild state: only where a delta was missing or damaged, or every batch after the snapshot when <see cref="PipelineRunnerOptions.WriteStateDeltas"/> is off.</param>
/// <param name="BatchesRun">Batches run and committed in this run (including a re-run uncommitted one).</param>
/// <param name="InputRecords">Records read by the batches run (not counting replays).</param>
/// <param name="LastCommittedBatch">The newest committed batch, or -1.</param>
/// <param name="RecoveryTime">Time from start until the first new batch could run.</param>
/// <param name="Elapsed">Total time.</param>
/// <param name="StateKeys">Keys held by stateful operators at the end.</param>
/// <param name="FinalSnapshotBatch">The batch whose state snapshot the run wrote as it stopped (so that the next start restores without deltas), or null when none was needed.</param>
/// <param name="UnreadTails">At the end of a bounded run: data that sources hold after the last complete record (a file's last line without its newline), which was not read; empty otherwise.</param>
public sealed record RunSummary(bool Restored, long? RestoredFromBatch, long BatchesFromDeltas, long BatchesReplayed, long BatchesRun, long InputRecords, long LastCommittedBatch, TimeSpan RecoveryTime, TimeSpan Elapsed, long StateKeys, long? FinalSnapshotBatch = null, IReadOnlyList<UnreadTail>? UnreadTails = null);

/// <summary>Thrown when an operator's method throws; names the operator and the batch.</summary>
public sealed class PipelineExecutionException : PipelineDslException
{
    /// <summary>Creates the exception.</summary>
    public PipelineExecutionException(string message, Exception inner) : base(message, inner) { }

    /// <inheritdoc />
    public override bool IsTransient => false;
}
