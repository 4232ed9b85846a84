using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;
using PipelineDsl.Execution;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
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

    /// <summary>Prepares a run of <paramref name="definition"/> (a generated <c>Definition</c>).</summary>
    public PipelineRunner(PipelineDefinition definition, PipelineRunnerOptions options)
    {
        _definition = definition ?? throw new ArgumentNullException(nameof(definition));
        _options = options ?? throw new ArgumentNullException(nameof(options));
    }

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
        using var checkpointLock = store.AcquireLock($"pipeline '{_definition.PipelineId}'");
        (store as LocalDirectoryCheckpointStore)?.RemoveAbandonedTemporaryFiles();
        var run = new Run(this, store, stopToken);
        try
        {
            return await run.ExecuteAsync().ConfigureAwait(false);
        }
        catch
        {
            // Keep the lock until a snapshot still being written has finished (its own failure is secondary).
            await run.DrainQuietlyAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The state of one call to <see cref="RunAsync"/>.</summary>
    private sealed class Run
    {
        private readonly PipelineRunner _runner;
        private readonly PipelineRunnerOptions _options;
        private readonly CheckpointLog _log;
        private readonly CancellationToken _stop;
        private readonly OperatorExecutor[] _executors;
        private readonly List<(string Id, ISourceExecutor Executor)> _sourceExecutors;
        private readonly SinkExecutorBase[] _sinkExecutors;
        private readonly IStatefulExecutor[] _stateful;
        private readonly Dictionary<string, SortedDictionary<string, long>> _positions = new(StringComparer.Ordinal);

        // Sources the checkpoint already knows. A partition of a known source that appears later starts at 0
        // (it is new data); the partitions of a source new to the checkpoint (a new checkpoint, or a source
        // added by a new build) start where the source's own starting position says.
        private readonly HashSet<string> _knownSources = new(StringComparer.Ordinal);
        private readonly List<string> _deadLetters = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private bool _freshCheckpoint;

        // The newest manifest the checkpoint holds (its metadata's, then the restored snapshot's): what the
        // state deltas after it were written under, for the compatibility rules of each operator's properties.
        private PipelineManifest? _storedManifest;
        private long _lastSnapshotBatch = -1;

        public Run(PipelineRunner runner, ICheckpointStore store, CancellationToken stop)
        {
            _runner = runner;
            _options = runner._options;
            _stop = stop;
            _log = new CheckpointLog(store, runner._definition.PipelineId);
            var factory = new ExecutorFactory(runner._sources, runner._sinks, _options.Parallelism);
            _executors = runner._definition.Operators.Select(factory.Build).ToArray();
            _sourceExecutors = _executors.OfType<ISourceExecutor>().Select(e => (e.Node.Id, e)).ToList();
            _sinkExecutors = _executors.OfType<SinkExecutorBase>().OrderBy(s => s.Node.Id, StringComparer.Ordinal).ToArray();
            _stateful = _executors.OfType<IStatefulExecutor>().ToArray();
            foreach (var (id, _) in _sourceExecutors) _positions[id] = new SortedDictionary<string, long>(StringComparer.Ordinal);
            foreach (var (id, connector) in runner._sources.Concat(runner._sinks))
                (connector as IConnectorContextAware)?.Attach(new ConnectorContext(runner._definition.PipelineId, id));
            _commitListeners = runner._sources.Where(s => s.Value is ISourceCommitListener).Select(s => (s.Key, (ISourceCommitListener)s.Value)).ToArray();
        }

        private readonly (string Id, ISourceCommitListener Listener)[] _commitListeners;

        private PipelineDefinition Definition => _runner._definition;

        private bool HasTimeDependentOperators => _executors.Any(e => e.Node.AdvancesWithoutInput);

        public async Task<RunSummary> ExecuteAsync()
        {
            var recovery = await RecoverAsync().ConfigureAwait(false);
            long next = recovery.LastCommitted + 1;
            long batchesRun = 0, inputRecords = 0;

            if (recovery.Pending is { } pending)
            {
                inputRecords += await RunBatchAsync(pending, replay: false).ConfigureAwait(false);
                batchesRun++;
                next = pending.BatchId + 1;
            }

            var recoveryTime = _clock.Elapsed;
            Dictionary<string, Dictionary<string, long>>? targets = null;
            if (_options.Trigger == TriggerMode.AvailableNow) targets = await CaptureTargetsAsync().ConfigureAwait(false);

            while (!_stop.IsCancellationRequested)
            {
                var started = _clock.Elapsed;
                var plan = await PlanAsync(next, targets).ConfigureAwait(false);
                long planned = plan.Sources.Values.Sum(p => p.Values.Sum(r => r.Count));
                bool positionsMoved = _freshCheckpoint;
                if (planned == 0 && !positionsMoved)
                {
                    if (targets is not null) break; // available-now: everything is processed
                    if (!HasTimeDependentOperators)
                    {
                        await DelayAsync(started).ConfigureAwait(false);
                        continue;
                    }
                }

                // The plan must be durable before any sink sees the batch, not before the batch is computed:
                // computing is pure, so the offsets write overlaps with reading and processing.
                var offsetsWritten = _log.WriteOffsetsAsync(plan, CancellationToken.None);
                _freshCheckpoint = false;
                inputRecords += await RunBatchAsync(plan, replay: false, offsetsWritten).ConfigureAwait(false);
                batchesRun++;
                next++;
                if (targets is null) await DelayAsync(started).ConfigureAwait(false);
            }

            long lastCommitted = next - 1;
            long? finalSnapshot = null;
            if (lastCommitted >= 0 && _lastSnapshotBatch != lastCommitted && _stateful.Length > 0)
            {
                StartSnapshot(lastCommitted);
                finalSnapshot = lastCommitted;
            }

            await FinishCommitAsync().ConfigureAwait(false);
            await FinishSnapshotAsync().ConfigureAwait(false);
            var unread = targets is not null ? await UnreadTailsAsync().ConfigureAwait(false) : Array.Empty<UnreadTail>();

            return new RunSummary(recovery.Restored, recovery.SnapshotBatch, recovery.FromDeltas, recovery.Replayed, batchesRun, inputRecords, lastCommitted,
                recoveryTime, _clock.Elapsed, _stateful.Sum(s => s.KeyCount), finalSnapshot, unread);
        }

        /// <summary>What sources hold after their last complete record at the end of a bounded run (see <see cref="IPartialRecordSource"/>).</summary>
        private async Task<IReadOnlyList<UnreadTail>> UnreadTailsAsync()
        {
            var tails = new List<UnreadTail>();
            foreach (var (id, _) in _sourceExecutors)
            {
                if (_runner._sources[id] is not IPartialRecordSource partial) continue;
                foreach (var (partition, position) in _positions[id])
                {
                    long length = await partial.GetIncompleteTailAsync(partition, position, CancellationToken.None).ConfigureAwait(false);
                    if (length > 0) tails.Add(new UnreadTail(id, partition, position, length));
                }
            }

            return tails;
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

        // ---- recovery ------------------------------------------------------------------------------

        private sealed record Recovery(bool Restored, long? SnapshotBatch, long Replayed, long FromDeltas, long LastCommitted, OffsetRecord? Pending);

        private async Task<Recovery> RecoverAsync()
        {
            var ct = CancellationToken.None;
            CheckpointMetadata? metadata;
            try
            {
                metadata = await _log.ReadMetadataAsync(ct).ConfigureAwait(false);
            }
            catch (CheckpointCorruptException e)
            {
                throw new CheckpointMismatchException($"The checkpoint '{_log.Store.Location}' has a damaged metadata file ({e.Message}). It cannot be trusted: restore the directory from a backup, or start a new checkpoint in an empty directory.", e);
            }

            var offsets = await _log.ListAsync("offsets", ct).ConfigureAwait(false);
            if (metadata is null)
            {
                if (offsets.Count > 0)
                    throw new CheckpointMismatchException($"The checkpoint '{_log.Store.Location}' has batch logs but no metadata file, so it cannot be trusted. Restore it from a backup, or start a new checkpoint in an empty directory.");
                await _log.CreateMetadataAsync(Definition.Manifest.Json, ct).ConfigureAwait(false);
                _freshCheckpoint = true;
                return new Recovery(false, null, 0, 0, -1, null);
            }

            if (metadata.Manifest is null)
                throw new CheckpointMismatchException($"The checkpoint '{_log.Store.Location}' has a metadata file without its manifest, so it cannot be trusted. Restore it from a backup, or start a new checkpoint in an empty directory.");
            try
            {
                _storedManifest = PipelineManifest.Parse(metadata.Manifest);
            }
            catch (FormatException e)
            {
                throw new CheckpointMismatchException($"The checkpoint '{_log.Store.Location}' has a metadata file whose manifest does not parse ({e.Message}). Restore it from a backup, or start a new checkpoint in an empty directory.", e);
            }

            if (metadata.CheckpointId is null)
            {
                // A checkpoint of an older build: it gets its identity now, before this build writes anything.
                await _log.AdoptLegacyAsync(metadata.Manifest, ct).ConfigureAwait(false);
            }

            long lastCommitted = -1;
            foreach (var (batch, name) in (await _log.ListAsync("commits", ct).ConfigureAwait(false)).AsEnumerable().Reverse())
            {
                if (await _log.IsValidCommitAsync(name, ct).ConfigureAwait(false))
                {
                    lastCommitted = batch;
                    break;
                }
            }

            // offsets/N+1 is written only after batch N committed, so the newest intact offsets file proves
            // the commit of the batch before it (commit files are not fsynced; see CheckpointLog).
            foreach (var (batch, name) in offsets.AsEnumerable().Reverse())
            {
                if (batch - 1 <= lastCommitted) break;
                try
                {
                    await _log.ReadOffsetsAsync(name, ct).ConfigureAwait(false);
                    lastCommitted = batch - 1;
                    break;
                }
                catch (CheckpointCorruptException)
                {
                }
            }

            long? snapshotBatch = null;
            foreach (var (batch, name) in (await _log.ListAsync("state", ct).ConfigureAwait(false)).AsEnumerable().Reverse())
            {
                try
                {
                    var body = await _log.ReadSnapshotAsync(name, ct).ConfigureAwait(false);
                    OffsetRecord? plannedThere = null;
                    try
                    {
                        plannedThere = await _log.ReadOffsetsAsync(CheckpointLog.Name("offsets", batch), ct).ConfigureAwait(false);
                    }
                    catch (CheckpointCorruptException)
                    {
                        // Without the batch's own plan the snapshot's positions are checked against nothing; the
                        // snapshot is still intact and of this checkpoint and batch.
                    }

                    RestoreSnapshot(body.Span, name, batch, plannedThere);
                    snapshotBatch = batch;
                    _lastSnapshotBatch = batch;
                    // A snapshot is written only after its batch committed, so it proves the commit even
                    // when the commit file itself is damaged.
                    lastCommitted = Math.Max(lastCommitted, batch);
                    break;
                }
                catch (Exception e) when (e is CheckpointCorruptException or MessagePackException)
                {
                    // A damaged or foreign snapshot is never trusted: fall back to the previous one and replay more batches.
                    ClearState();
                }
            }

            // Retention deletes the offsets of a batch only after a newer snapshot covers it: a log that starts
            // after batch 0 means batches before it were committed. If nothing intact of this checkpoint proves
            // where they ended (every snapshot, commit and offsets file damaged or foreign, or a metadata file
            // from another checkpoint), starting over would read all input again: refuse, and delete nothing.
            long earliestLogged = offsets.Count > 0 ? offsets[0].Batch : 0;
            // Likewise a snapshot, a commit of batch 1 or later, or an offsets file of batch 1 or later exists only
            // once batch 0 committed: finding none of them trustworthy is not a fresh start.
            bool somethingCommitted = offsets.Any(o => o.Batch >= 1)
                || (await _log.ListAsync("commits", ct).ConfigureAwait(false)).Any(c => c.Batch >= 1)
                || (await _log.ListAsync("state", ct).ConfigureAwait(false)).Count > 0;
            if (lastCommitted + 1 < earliestLogged || (lastCommitted < 0 && somethingCommitted))
            {
                throw new CheckpointMismatchException(
                    $"Cannot recover the checkpoint '{_log.Store.Location}': its files show that batches were committed (its offsets log starts at batch {earliestLogged}), "
                    + $"but no intact snapshot, commit or offsets file of this checkpoint (identity {_log.CheckpointId}, from 'metadata') proves where they ended. "
                    + "The files are damaged, or 'metadata' comes from another checkpoint. Restore the checkpoint from a backup, or start a new checkpoint in an empty directory.");
            }

            long replayed = 0, fromDeltas = 0;
            long first = (snapshotBatch ?? -1) + 1;
            for (long b = first; b <= lastCommitted; b++)
            {
                OffsetRecord plan;
                try
                {
                    string planName = CheckpointLog.Name("offsets", b);
                    if (_disagreeing.TryGetValue(b, out string? disagreement)) throw new CheckpointCorruptException(disagreement);
                    plan = await _log.ReadOffsetsAsync(planName, ct).ConfigureAwait(false);
                    CheckContinuity(plan, planName);
                    await CheckWithinSourcesAsync(plan, planName).ConfigureAwait(false);
                }
                catch (CheckpointCorruptException e)
                {
                    var commit = await _log.ReadCommitAsync(CheckpointLog.Name("commits", b), ct).ConfigureAwait(false);
                    throw new CheckpointMismatchException(
                        $"Cannot recover the checkpoint '{_log.Store.Location}': batch {b} is committed"
                        + (commit.Intact ? " (its commit file is intact)" : "")
                        + $", but its offsets file, which holds the input positions that batch read up to, is unusable: {e.Message} "
                        + $"Without it neither the positions nor the state after batch {b} can be rebuilt. Restore the checkpoint from a backup, or start a new checkpoint.", e);
                }

                var delta = await _log.ReadCommitDeltaAsync(CheckpointLog.Name("commits", b), ct).ConfigureAwait(false);
                if (delta is not null && _stateful.Length > 0)
                {
                    try
                    {
                        ApplyDelta(delta, plan);
                    }
                    catch (Exception e) when (e is MessagePackException or ArgumentException or InvalidOperationException)
                    {
                        // The file passed its checksum, so this is not damage: never fall back to a silent replay.
                        throw new CheckpointCorruptException($"The state delta in '{CheckpointLog.Name("commits", b)}' passed its checksum but does not decode with this build ({e.Message}). Run the build that wrote it, or start a new checkpoint.", e);
                    }

                    fromDeltas++;
                    continue;
                }

                await RunBatchAsync(plan, replay: true).ConfigureAwait(false);
                replayed++;
            }

            if (lastCommitted >= 0 && snapshotBatch is null && first == 0 && replayed == 0 && fromDeltas == 0)
                throw new CheckpointMismatchException($"Cannot recover the checkpoint '{_log.Store.Location}': no usable snapshot and no offsets log from batch 0.");

            OffsetRecord? pending = null;
            foreach (var (batch, name) in offsets.Where(o => o.Batch > lastCommitted))
            {
                if (batch == lastCommitted + 1)
                {
                    try
                    {
                        pending = await _log.ReadOffsetsAsync(name, ct).ConfigureAwait(false);
                        CheckContinuity(pending, name);
                        await CheckWithinSourcesAsync(pending, name).ConfigureAwait(false);
                        continue;
                    }
                    catch (CheckpointCorruptException)
                    {
                        // Never committed, so nothing downstream depends on its ranges: plan it again.
                        pending = null;
                    }
                }

                await _log.Store.DeleteAsync(name, ct).ConfigureAwait(false);
            }

            return new Recovery(true, snapshotBatch, replayed, fromDeltas, lastCommitted, pending);
        }

        /// <summary>
        /// A batch's ranges start where the previous batch ended: a range of a known partition that starts
        /// anywhere else comes from another checkpoint (or another run of this one), and would skip or repeat input.
        /// </summary>
        private void CheckContinuity(OffsetRecord plan, string name)
        {
            foreach (var source in _knownSources)
            {
                // The planner lists every partition it knows, even one with nothing new: a plan without one was cut.
                if (!_positions.TryGetValue(source, out var knownPartitions) || knownPartitions.Count == 0) continue;
                if (!plan.Sources.TryGetValue(source, out var planned) || knownPartitions.Keys.Any(p => !planned.ContainsKey(p)))
                    throw new CheckpointCorruptException(
                        $"Checkpoint file '{name}' does not plan every partition of source '{source}' that the batch before it read: it was cut or altered and is not used.");
            }

            foreach (var (source, ranges) in plan.Sources)
            {
                if (!_positions.TryGetValue(source, out var known)) continue; // a retired source
                foreach (var (partition, range) in ranges)
                {
                    if (known.TryGetValue(partition, out long position) && position != range.From)
                        throw new CheckpointCorruptException(
                            $"Checkpoint file '{name}' plans source '{source}', partition '{partition}' from position {range.From}, but the batch before it ended at {position}: "
                            + "it does not continue this checkpoint (a file from another checkpoint or an older run) and is not used.");
                }
            }
        }

        /// <summary>
        /// Every range of a plan lies within what its source holds: a range past the end, or of a partition the
        /// source does not have, was altered (or the source lost data) and is not read.
        /// </summary>
        private readonly Dictionary<(string Source, string Partition), long> _knownEnds = new();

        private async Task CheckWithinSourcesAsync(OffsetRecord plan, string name)
        {
            foreach (var (id, executor) in _sourceExecutors)
            {
                if (!plan.Sources.TryGetValue(id, out var ranges)) continue;
                foreach (var (partition, range) in ranges)
                {
                    if (range.Count == 0) continue;
                    long end;
                    try
                    {
                        // Asked once per partition during a recovery: data only grows, so one answer serves every plan checked.
                        if (!_knownEnds.TryGetValue((id, partition), out end))
                            _knownEnds[(id, partition)] = end = await executor.EndAsync(partition, CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is InvalidDataException or FileNotFoundException or ArgumentException or FormatException)
                    {
                        throw new CheckpointCorruptException($"Checkpoint file '{name}' plans source '{id}', partition '{partition}', which the source cannot read: {e.Message}", e);
                    }

                    if (range.To > end)
                        throw new CheckpointCorruptException(
                            $"Checkpoint file '{name}' plans source '{id}', partition '{partition}' up to position {range.To}, but the source ends at {end}: the file was altered, or the source lost data.");
                }
            }
        }

        private void ClearState()
        {
            foreach (var s in _stateful) s.Clear();
            foreach (var p in _positions.Values) p.Clear();
            _knownSources.Clear();
        }

        // ---- snapshots ---------------------------------------------------------------------------

        // Two sets of commit buffers: batch N's commit file is written in the background while batch N+1 runs.
        private readonly CommitBuffers[] _commitBuffers = { new(), new() };
        private Task _commitWrite = Task.CompletedTask;

        /// <summary>
        /// Serializes batch N's commit file (with its state delta) now, and writes it while the next batch runs.
        /// That is safe because commit files are not the only proof of a commit: the durable offsets of batch
        /// N+1 prove commit N, and a commit whose delta is lost only makes recovery re-run batch N from its
        /// logged range. The write is awaited before the next commit (so commits land in order and a buffer
        /// is never reused while in flight) and before the run ends.
        /// </summary>
        private void StartCommit(CommitRecord record)
        {
            var previous = _commitWrite;
            previous.GetAwaiter().GetResult(); // waits for, or surfaces the failure of, the previous commit's write

            var buffers = _commitBuffers[record.BatchId & 1];
            Action<MessagePackWriter>? delta = _stateful.Length == 0 || !_options.WriteStateDeltas ? null : w => SerializeDelta(w, record.BatchId);
            string batch = record.BatchId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var published = _commitListeners.Select(l => (l.Listener, (IReadOnlyDictionary<string, long>)new Dictionary<string, long>(_positions[l.Id], StringComparer.Ordinal))).ToArray();
            _commitWrite = WriteAsync();

            async Task WriteAsync()
            {
                await _log.WriteCommitAsync(record, delta, buffers, CancellationToken.None).ConfigureAwait(false);
                CrashPoints.Hit("after-commit", batch);
                foreach (var (listener, positions) in published)
                {
                    try
                    {
                        await listener.OnBatchCommittedAsync(record.BatchId, positions, CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        // Informational only (see ISourceCommitListener): the checkpoint already holds the truth.
                    }
                }
            }
        }

        private Task FinishCommitAsync() => _commitWrite;

        /// <summary>
        /// What this batch changed in every stateful operator, stored in its commit file: recovery applies
        /// these deltas after the newest snapshot instead of re-running the batches, so a restore (even by a
        /// new build) continues from exactly the state of the last committed batch.
        /// </summary>
        private void SerializeDelta(MessagePackWriter w, long batchId)
        {
            w.WriteMapHeader(_stateful.Length);
            foreach (var s in _stateful)
            {
                // The schema travels with the delta: a later build checks it with the rules of a snapshot.
                var schema = Definition.Manifest.Find(s.Node.Id)?.StateSchema;
                w.Write(s.Node.Id);
                w.WriteMapHeader(4);
                w.Write("version");
                w.Write((long)s.Node.Version);
                w.Write("key");
                w.Write(schema?.KeySchema ?? "");
                w.Write("value");
                w.Write(schema?.ValueSchema ?? "");
                w.Write("delta");
                s.WriteDelta(w, batchId);
            }
        }

        /// <summary>Applies the state delta of a committed batch; false when it cannot be used (then the batch is replayed).</summary>
        private bool ApplyDelta(byte[] delta, OffsetRecord plan)
        {
            var r = new MessagePackReader(delta);
            var entries = new List<(IStatefulExecutor Executor, long Version, int Start, int Length)>();
            var problems = new List<string>();
            int ops = r.ReadMapHeader();
            for (int o = 0; o < ops; o++)
            {
                string id = r.ReadString() ?? "";
                long version = -1;
                string? keySchema = null, valueSchema = null;
                int start = -1, length = 0;
                int fields = r.ReadMapHeader();
                for (int f = 0; f < fields; f++)
                {
                    switch (r.ReadString())
                    {
                        case "version": version = r.ReadInt64(); break;
                        case "key": keySchema = r.ReadString(); break;
                        case "value": valueSchema = r.ReadString(); break;
                        case "delta":
                            start = r.Position;
                            length = r.ReadRaw().Length;
                            break;
                        default: r.Skip(); break;
                    }
                }

                if (start < 0)
                    throw new CheckpointCorruptException(
                        $"Checkpoint file '{CheckpointLog.Name("commits", plan.BatchId)}' passed its checksum, but its state delta for operator '{id}' has no 'delta' entry: "
                        + "it was not written by PipelineDsl. Restore the checkpoint from a backup, or start a new checkpoint.");
                var decision = RestoreCompatibility.DecideOperator(id, version, null, keySchema, valueSchema, null, Definition.Manifest, _storedManifest?.Find(id));
                switch (decision.Action)
                {
                    case StateAction.Keep or StateAction.Migrate:
                        entries.Add((_stateful.First(x => x.Node.Id == id), version, start, length));
                        break;
                    case StateAction.Incompatible:
                        problems.Add(decision.Problem!);
                        break;
                }
            }

            if (problems.Count > 0)
            {
                throw new CheckpointIncompatibleException(
                    $"The checkpoint '{_log.Store.Location}' (the state delta of batch {plan.BatchId}) cannot be restored by this build of pipeline '{Definition.PipelineId}':\n  - "
                    + string.Join("\n  - ", problems) + "\nFix the build as described, or start a new checkpoint.", problems);
            }

            foreach (var (executor, version, start, length) in entries)
            {
                var reader = new MessagePackReader(delta.AsSpan(start, length));
                executor.ApplyDelta(ref reader, version);
            }

            foreach (var (id, _) in _sourceExecutors)
            {
                if (!plan.Sources.TryGetValue(id, out var ranges)) continue;
                foreach (var (partition, range) in ranges) _positions[id][partition] = range.To;
                _knownSources.Add(id);
            }

            return true;
        }

        private Task _snapshotWrite = Task.CompletedTask;
        private readonly CommitBuffers _snapshotBuffers = new();

        /// <summary>
        /// Serializes all state now (so the snapshot is exactly the state after <paramref name="batchId"/>)
        /// and writes it in the background while the next batches run; the write (and the retention after it)
        /// is awaited before the next snapshot and before the run ends.
        /// </summary>
        private void StartSnapshot(long batchId)
        {
            // Reuse the snapshot buffers when the previous write is done (it had CheckpointInterval batches to
            // finish): a fresh multi-megabyte buffer per snapshot lands in the large object heap, whose budget
            // then turns every collection into a full one. A write still running keeps its buffers.
            var previous = _snapshotWrite;
            var buffers = previous.IsCompleted ? _snapshotBuffers : new CommitBuffers();
            SerializeSnapshot(batchId, buffers.Body);
            _lastSnapshotBatch = batchId;
            _snapshotWrite = Task.Run(async () =>
            {
                await previous.ConfigureAwait(false);
                await _log.WriteSnapshotAsync(batchId, buffers, CancellationToken.None).ConfigureAwait(false);
                await _log.ApplyRetentionAsync(_options.RetainedSnapshots, CancellationToken.None).ConfigureAwait(false);
            });
        }

        private Task FinishSnapshotAsync() => _snapshotWrite;

        public async Task DrainQuietlyAsync()
        {
            foreach (var write in new[] { _commitWrite, _snapshotWrite })
            {
                try
                {
                    await write.ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or CheckpointCorruptException)
                {
                }
            }
        }

        private void SerializeSnapshot(long batchId, MessagePackWriter w)
        {
            w.Clear();
            w.WriteMapHeader(4);
            w.Write("batch");
            w.Write(batchId);
            w.Write("manifest");
            w.Write(Definition.Manifest.Json);
            w.Write("positions");
            w.WriteMapHeader(_positions.Count);
            foreach (var (source, partitions) in _positions)
            {
                w.Write(source);
                w.WriteMapHeader(partitions.Count);
                foreach (var (partition, position) in partitions)
                {
                    w.Write(partition);
                    w.Write(position);
                }
            }

            w.Write("operators");
            w.WriteMapHeader(_stateful.Length);
            foreach (var s in _stateful)
            {
                var entry = Definition.Manifest.Find(s.Node.Id)!;
                w.Write(s.Node.Id);
                w.WriteMapHeader(3);
                w.Write("version");
                w.Write((long)entry.Version);
                w.Write("fingerprint");
                w.Write(entry.StateSchema?.Fingerprint ?? "");
                w.Write("entries");
                s.WriteSnapshot(w);
            }
        }

        /// <summary>
        /// Batches whose snapshot and offsets file disagree about where the batch ended. Either file may be the
        /// altered one, so neither is trusted: the snapshot is not restored, and the offsets file is not replayed.
        /// </summary>
        private readonly Dictionary<long, string> _disagreeing = new();

        private void RestoreSnapshot(ReadOnlySpan<byte> body, string name, long batch, OffsetRecord? plannedThere)
        {
            CheckpointCorruptException Disagree(string message)
            {
                _disagreeing[batch] = $"{message} Checkpoint files '{name}' and '{CheckpointLog.Name("offsets", batch)}' disagree about where batch {batch} ended, so neither is trusted.";
                return new CheckpointCorruptException(message);
            }

            // First read what the snapshot holds, then decide for every operator, then decode: nothing is
            // restored unless everything can be.
            var r = new MessagePackReader(body);
            int fields = r.ReadMapHeader();
            string? manifestJson = null;
            long? storedBatch = null;
            bool hasPositions = false, hasOperators = false;
            var positions = new Dictionary<string, Dictionary<string, long>>(StringComparer.Ordinal);
            var operators = new Dictionary<string, (long Version, string Fingerprint, int Start, int Length)>(StringComparer.Ordinal);
            for (int i = 0; i < fields; i++)
            {
                switch (r.ReadString())
                {
                    case "manifest":
                        manifestJson = r.ReadString();
                        break;
                    case "batch":
                        storedBatch = r.ReadInt64();
                        break;
                    case "positions":
                        hasPositions = true;
                        int sources = r.ReadMapHeader();
                        for (int s = 0; s < sources; s++)
                        {
                            string source = r.ReadString() ?? "";
                            var partitions = positions[source] = new Dictionary<string, long>(StringComparer.Ordinal);
                            int count = r.ReadMapHeader();
                            for (int p = 0; p < count; p++) partitions[r.ReadString() ?? ""] = r.ReadInt64();
                        }

                        break;
                    case "operators":
                        hasOperators = true;
                        int ops = r.ReadMapHeader();
                        for (int o = 0; o < ops; o++)
                        {
                            string id = r.ReadString() ?? "";
                            long version = -1;
                            string fingerprint = "";
                            int start = -1, length = 0;
                            int opFields = r.ReadMapHeader();
                            for (int f = 0; f < opFields; f++)
                            {
                                switch (r.ReadString())
                                {
                                    case "version": version = r.ReadInt64(); break;
                                    case "fingerprint": fingerprint = r.ReadString() ?? ""; break;
                                    case "entries":
                                        start = r.Position;
                                        length = r.ReadRaw().Length;
                                        break;
                                    default: r.Skip(); break;
                                }
                            }

                            if (start < 0) throw new CheckpointCorruptException($"'{name}' has no entries for operator '{id}'.");
                            operators[id] = (version, fingerprint, start, length);
                        }

                        break;
                    default:
                        r.Skip();
                        break;
                }
            }

            // Structure: a snapshot that passed its checksum but lacks what a restore needs is not trusted
            // (restoring it would silently reset state or re-read all input).
            if (!hasPositions) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no source positions: it is not used.");
            if (!hasOperators) throw new CheckpointCorruptException($"Checkpoint file '{name}' has no operator state: it is not used.");
            if (storedBatch is long b && b != batch)
                throw new CheckpointCorruptException($"Checkpoint file '{name}' holds the state after batch {b}: it was copied or renamed from another batch's snapshot and is not used.");
            if (plannedThere is not null)
            {
                foreach (var (source, ranges) in plannedThere.Sources)
                {
                    if (!positions.TryGetValue(source, out var stored0)) throw Disagree($"Checkpoint file '{name}' has no positions of source '{source}', which batch {batch} read: it is not used.");
                    foreach (var (partition, range) in ranges)
                    {
                        if (!stored0.TryGetValue(partition, out long position) || position != range.To)
                            throw Disagree(
                                $"Checkpoint file '{name}' says source '{source}', partition '{partition}' was read up to {(stored0.TryGetValue(partition, out long p0) ? p0.ToString(System.Globalization.CultureInfo.InvariantCulture) : "nothing")}, but batch {batch} read up to {range.To}: it does not belong to this checkpoint's batch {batch} and is not used.");
                    }
                }
            }

            PipelineManifest? stored = null;
            if (manifestJson is not null)
            {
                try
                {
                    stored = PipelineManifest.Parse(manifestJson);
                }
                catch (FormatException e)
                {
                    throw new CheckpointCorruptException($"'{name}' holds an unreadable manifest: {e.Message}", e);
                }
            }

            // A snapshot holds the state of every stateful operator its build had: one that is missing was cut out.
            foreach (var op in stored?.Operators ?? Array.Empty<OperatorManifest>())
            {
                if (OperatorKinds.KeepsState(op.Kind) && !operators.ContainsKey(op.Id))
                    throw new CheckpointCorruptException($"Checkpoint file '{name}' has no state for operator '{op.Id}', which its build kept state for: it is not used.");
            }

            var decisions = RestoreCompatibility.Decide(stored, operators.ToDictionary(p => p.Key, p => (p.Value.Version, p.Value.Fingerprint)), positions.Keys, Definition.Manifest);
            var problems = decisions.Where(d => d.Action == StateAction.Incompatible).Select(d => d.Problem!).ToList();
            if (problems.Count > 0)
            {
                throw new CheckpointIncompatibleException(
                    $"The checkpoint '{_log.Store.Location}' ({name}) cannot be restored by this build of pipeline '{Definition.PipelineId}':\n  - "
                    + string.Join("\n  - ", problems)
                    + "\nNothing was changed. Fix the build as described, or start a new checkpoint.", problems);
            }

            foreach (var d in decisions.Where(d => d.Action is StateAction.Keep or StateAction.Migrate))
            {
                var (_, _, start, length) = operators[d.OperatorId];
                var reader = new MessagePackReader(body.Slice(start, length));
                _stateful.First(s => s.Node.Id == d.OperatorId).RestoreSnapshot(ref reader, d.StoredVersion);
            }

            foreach (var (source, partitions) in positions)
            {
                if (!_positions.TryGetValue(source, out var known)) continue; // a retired source
                foreach (var (partition, position) in partitions) known[partition] = position;
                _knownSources.Add(source);
            }

            LastRestoreDecisions = decisions;
            if (stored is not null) _storedManifest = stored;
        }

        /// <summary>What the last restore did with each operator's state.</summary>
        public IReadOnlyList<StateDecision> LastRestoreDecisions { get; private set; } = Array.Empty<StateDecision>();

        // ---- planning --------------------------------------------------------------------------------

        private async Task<Dictionary<string, Dictionary<string, long>>> CaptureTargetsAsync()
        {
            var targets = new Dictionary<string, Dictionary<string, long>>(StringComparer.Ordinal);
            foreach (var (id, executor) in _sourceExecutors)
            {
                var ends = new Dictionary<string, long>(StringComparer.Ordinal);
                foreach (var partition in await executor.ListAsync(CancellationToken.None).ConfigureAwait(false))
                    ends[partition] = await executor.EndAsync(partition, CancellationToken.None).ConfigureAwait(false);
                targets[id] = ends;
            }

            return targets;
        }

        private async Task<OffsetRecord> PlanAsync(long batchId, Dictionary<string, Dictionary<string, long>>? targets)
        {
            var sources = new SortedDictionary<string, SortedDictionary<string, PartitionRange>>(StringComparer.Ordinal);
            foreach (var (id, executor) in _sourceExecutors)
            {
                var known = _positions[id];
                var ranges = new SortedDictionary<string, PartitionRange>(StringComparer.Ordinal);
                var listed = await executor.ListAsync(CancellationToken.None).ConfigureAwait(false);

                foreach (var partition in listed.Union(known.Keys).Distinct().OrderBy(p => p, StringComparer.Ordinal))
                {
                    long from = known.TryGetValue(partition, out long position)
                        ? position
                        : await executor.InitialAsync(partition, partitionIsNew: _knownSources.Contains(id), CancellationToken.None).ConfigureAwait(false);
                    long to = from;
                    if (listed.Contains(partition))
                    {
                        long end = await executor.EndAsync(partition, CancellationToken.None).ConfigureAwait(false);
                        // In every mode, bounded too: data that shrank below what was processed was rewritten or
                        // truncated, and reading on from the old position would skip or repeat records silently.
                        if (end < from)
                            throw new InvalidDataException($"Source '{id}', partition '{partition}': the data now ends at position {end}, before position {from}, which earlier batches already processed. A source must only grow: restore the input, or start a new checkpoint.");
                        long available = end;
                        if (targets is not null) available = targets[id].TryGetValue(partition, out long target) ? Math.Min(end, Math.Max(target, from)) : from;

                        to = _options.MaxRecordsPerPartition is long cap
                            ? await executor.AdvanceAsync(partition, from, available, cap, CancellationToken.None).ConfigureAwait(false)
                            : available;
                    }

                    ranges[partition] = new PartitionRange(from, to);
                }

                sources[id] = ranges;
                _knownSources.Add(id);
            }

            return new OffsetRecord(batchId, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), sources);
        }

        // ---- one batch -----------------------------------------------------------------------------

        /// <summary>
        /// Runs one planned batch; returns the number of input records. <paramref name="planLogged"/>, when
        /// given, is the write of the batch's offsets, awaited before anything reaches a sink.
        /// </summary>
        private async Task<long> RunBatchAsync(OffsetRecord plan, bool replay, Task? planLogged = null)
        {
            var started = _clock.Elapsed;
            var batch = new BatchContext(plan.BatchId, _options.Parallelism, FinishedSources(plan));
            foreach (var executor in _executors) executor.ClearOutput();
            _deadLetters.Clear();

            long input = 0;
            foreach (var (id, executor) in _sourceExecutors)
            {
                var ranges = plan.Sources.TryGetValue(id, out var r) ? r : new SortedDictionary<string, PartitionRange>();
                input += await executor.ReadAsync(ranges, _options.BadRecordPolicy, _deadLetters, CancellationToken.None).ConfigureAwait(false);
                foreach (var (partition, range) in ranges) _positions[id][partition] = range.To;
                if (plan.Sources.ContainsKey(id)) _knownSources.Add(id);
            }

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
                    throw new PipelineExecutionException($"Operator '{executor.Node.Id}' failed in batch {plan.BatchId}: {inner.Message}", inner);
                }
            }

            if (planLogged is not null)
            {
                await planLogged.ConfigureAwait(false);
                CrashPoints.Hit("after-offsets", plan.BatchId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            long output = 0;
            bool snapshot = false;
            if (!replay)
            {
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
                }

                if (_deadLetters.Count > 0) await WriteDeadLettersAsync(plan.BatchId).ConfigureAwait(false);
                CrashPoints.Hit("after-sinks", plan.BatchId.ToString(System.Globalization.CultureInfo.InvariantCulture));
                StartCommit(new CommitRecord(plan.BatchId, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), input));
                if (_stateful.Length > 0 && (plan.BatchId + 1) % _options.CheckpointInterval == 0)
                {
                    // At most one snapshot in flight: a slow disk slows the pipeline instead of piling up memory.
                    await FinishSnapshotAsync().ConfigureAwait(false);
                    StartSnapshot(plan.BatchId);
                    snapshot = true;
                }
            }

            _runner.BatchCompleted?.Invoke(new BatchProgress(plan.BatchId, input, output, _clock.Elapsed - started, _stateful.Sum(s => s.KeyCount), replay, snapshot, _deadLetters.Count, batch.LateRecords));
            return input;
        }

        /// <summary>
        /// The bounded sources whose every partition this batch's plan reads to the end: event time downstream of
        /// them is complete. A function of the logged plan, so a replay decides the same.
        /// </summary>
        private HashSet<string> FinishedSources(OffsetRecord plan)
        {
            var finished = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (id, _) in _sourceExecutors)
            {
                if (_runner._sources[id] is not IBoundedSource bounded || !plan.Sources.TryGetValue(id, out var ranges) || ranges.Count == 0) continue;
                if (ranges.All(r => bounded.GetFinalPosition(r.Key) is long end && r.Value.To >= end)) finished.Add(id);
            }

            return finished;
        }

        private async Task WriteDeadLettersAsync(long batchId)
        {
            string directory = _options.DeadLetterDirectory ?? Path.Combine(_log.Store.Location, "dead-letter");
            var text = new StringBuilder();
            foreach (var line in _deadLetters) text.Append(line).Append('\n');
            await DurableFile.WriteAsync(Path.Combine(directory, $"batch-{batchId:D10}.jsonl"), Encoding.UTF8.GetBytes(text.ToString()), CancellationToken.None).ConfigureAwait(false);
        }
    }
}

/// <summary>Thrown when a checkpoint was written by a build whose state this build cannot read; lists each operator and why.</summary>
public sealed class CheckpointIncompatibleException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointIncompatibleException(string message, IReadOnlyList<string> operators) : base(message) => Operators = operators;

    /// <inheritdoc />
    public override bool IsTransient => false;

    /// <summary>One line per operator that blocks the restore.</summary>
    public IReadOnlyList<string> Operators { get; }
}
