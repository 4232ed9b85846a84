using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Execution;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.Checkpointing;

/// <summary>What a recovery found and did.</summary>
/// <param name="Restored">An existing checkpoint was continued (false: a new one was created).</param>
/// <param name="SnapshotBatch">The batch of the snapshot restored, if any.</param>
/// <param name="Replayed">Committed batches re-run from their logged ranges (sinks skipped).</param>
/// <param name="FromDeltas">Committed batches whose state came from their commit's delta.</param>
/// <param name="LastCommitted">The newest committed batch (-1: none).</param>
/// <param name="Pending">The logged plan of the batch after it, which never committed: it runs next, with exactly these ranges.</param>
internal sealed record RecoveryResult(bool Restored, long? SnapshotBatch, long Replayed, long FromDeltas, long LastCommitted, OffsetRecord? Pending)
{
    /// <summary>A new, empty checkpoint: its first batch runs even when no input is there, to record the starting positions.</summary>
    public bool Fresh => !Restored;
}

/// <summary>
/// Brings a run to the exact state after the newest committed batch: reads the metadata (identity, manifest),
/// finds the newest committed batch, restores the newest trustworthy snapshot, then rebuilds every committed
/// batch after it, from its commit's state delta or by re-running it (<c>replay</c>) with its logged ranges.
/// Owns every rule about which checkpoint file is trusted; a file that is damaged, foreign, or disagrees with
/// another is never used, and a checkpoint whose files prove commits that nothing trustworthy can rebuild is
/// refused rather than started over.
/// </summary>
internal sealed class RecoveryPlanner
{
    private readonly CheckpointLog _log;
    private readonly BatchPlanner _planner;
    private readonly StatefulOperators _state;
    private readonly PipelineDefinition _definition;
    private readonly Func<OffsetRecord, Task> _replay;

    // The newest manifest the checkpoint holds (its metadata's, then the restored snapshot's): what the
    // state deltas after it were written under, for the compatibility rules of each operator's properties.
    private PipelineManifest? _storedManifest;

    // Batches whose snapshot and offsets file disagree about where the batch ended. Either file may be the
    // altered one, so neither is trusted: the snapshot is not restored, and the offsets file is not replayed.
    private readonly Dictionary<long, string> _disagreeing = new();

    public RecoveryPlanner(CheckpointLog log, BatchPlanner planner, StatefulOperators state, PipelineDefinition definition, Func<OffsetRecord, Task> replay)
    {
        _log = log;
        _planner = planner;
        _state = state;
        _definition = definition;
        _replay = replay;
    }

    private string Location => _log.Store.Location;

    /// <param name="followedThrough">
    /// When this process followed the checkpoint as a hot standby: the batch its state is already rebuilt through
    /// (by <see cref="FollowAsync"/>). Recovery then continues from there instead of restoring a snapshot, as long
    /// as the logs it needs after that batch are still there.
    /// </param>
    public async Task<RecoveryResult> RecoverAsync(long? followedThrough = null)
    {
        var ct = CancellationToken.None;
        CheckpointMetadata? metadata;
        try
        {
            metadata = await _log.ReadMetadataAsync(ct).ConfigureAwait(false);
        }
        catch (CheckpointCorruptException e)
        {
            throw new CheckpointMismatchException($"The checkpoint '{Location}' has a damaged metadata file ({e.Message}). It cannot be trusted: restore the directory from a backup, or start a new checkpoint in an empty directory.", e);
        }

        var offsets = await _log.ListAsync("offsets", ct).ConfigureAwait(false);
        if (metadata is null)
        {
            if (offsets.Count > 0)
                throw new CheckpointMismatchException($"The checkpoint '{Location}' has batch logs but no metadata file, so it cannot be trusted. Restore it from a backup, or start a new checkpoint in an empty directory.");
            await _log.CreateMetadataAsync(_definition.Manifest.Json, ct).ConfigureAwait(false);
            return new RecoveryResult(false, null, 0, 0, -1, null);
        }

        if (metadata.Manifest is null)
            throw new CheckpointMismatchException($"The checkpoint '{Location}' has a metadata file without its manifest, so it cannot be trusted. Restore it from a backup, or start a new checkpoint in an empty directory.");
        try
        {
            _storedManifest = PipelineManifest.Parse(metadata.Manifest);
        }
        catch (FormatException e)
        {
            throw new CheckpointMismatchException($"The checkpoint '{Location}' has a metadata file whose manifest does not parse ({e.Message}). Restore it from a backup, or start a new checkpoint in an empty directory.", e);
        }

        if (metadata.CheckpointId is null)
        {
            // A checkpoint of an older build: it gets its identity now, before this build writes anything.
            await _log.AdoptLegacyAsync(metadata.Manifest, ct).ConfigureAwait(false);
        }

        var commits = await _log.ListAsync("commits", ct).ConfigureAwait(false);
        var snapshots = await _log.ListAsync("state", ct).ConfigureAwait(false);
        long lastCommitted = await LastCommittedAsync(commits, offsets).ConfigureAwait(false);

        long earliestLogged = offsets.Count > 0 ? offsets[0].Batch : 0;
        long first;
        long? snapshotBatch;
        (first, snapshotBatch, lastCommitted) = await StartingPointAsync(followedThrough, lastCommitted, earliestLogged, snapshots).ConfigureAwait(false);

        // Retention deletes the offsets of a batch only after a newer snapshot covers it: a log that starts
        // after batch 0 means batches before it were committed. If nothing intact of this checkpoint proves
        // where they ended (every snapshot, commit and offsets file damaged or foreign, or a metadata file
        // from another checkpoint), starting over would read all input again: refuse, and delete nothing.
        // Likewise a snapshot, a commit of batch 1 or later, or an offsets file of batch 1 or later exists only
        // once batch 0 committed: finding none of them trustworthy is not a fresh start.
        bool somethingCommitted = offsets.Any(o => o.Batch >= 1) || commits.Any(c => c.Batch >= 1) || snapshots.Count > 0;
        if (lastCommitted + 1 < earliestLogged || (lastCommitted < 0 && somethingCommitted))
        {
            throw new CheckpointMismatchException(
                $"Cannot recover the checkpoint '{Location}': its files show that batches were committed (its offsets log starts at batch {earliestLogged}), "
                + $"but no intact snapshot, commit or offsets file of this checkpoint (identity {_log.CheckpointId}, from 'metadata') proves where they ended. "
                + "The files are damaged, or 'metadata' comes from another checkpoint. Restore the checkpoint from a backup, or start a new checkpoint in an empty directory.");
        }

        var (replayed, fromDeltas) = await RebuildCommittedAsync(first, lastCommitted).ConfigureAwait(false);

        if (lastCommitted >= 0 && snapshotBatch is null && first == 0 && replayed == 0 && fromDeltas == 0)
            throw new CheckpointMismatchException($"Cannot recover the checkpoint '{Location}': no usable snapshot and no offsets log from batch 0.");

        var pending = await PendingPlanAsync(offsets, lastCommitted).ConfigureAwait(false);
        return new RecoveryResult(true, snapshotBatch, replayed, fromDeltas, lastCommitted, pending);
    }

    /// <summary>
    /// A hot standby's step: brings the state up to the newest committed batch of a checkpoint that another
    /// process holds, writing and deleting nothing. Continues from <paramref name="followedThrough"/> (the batch
    /// the state is rebuilt through, from the previous step) by applying the newer commits' state deltas (or
    /// replaying their logged ranges, sinks skipped); restores the newest snapshot when there is nothing to
    /// continue from, or when retention removed the logs after it. Returns the batch the state is now rebuilt
    /// through, or null when the checkpoint has nothing to follow yet (it is new, or of an older build that
    /// its holder upgrades first).
    /// </summary>
    public async Task<long?> FollowAsync(long? followedThrough)
    {
        var ct = CancellationToken.None;
        var metadata = await _log.ReadMetadataAsync(ct).ConfigureAwait(false);
        if (metadata?.Manifest is null || metadata.CheckpointId is null) return null;
        _storedManifest ??= PipelineManifest.Parse(metadata.Manifest);

        var offsets = await _log.ListAsync("offsets", ct).ConfigureAwait(false);
        var commits = await _log.ListAsync("commits", ct).ConfigureAwait(false);
        long lastCommitted = await LastCommittedAsync(commits, offsets).ConfigureAwait(false);
        long earliestLogged = offsets.Count > 0 ? offsets[0].Batch : 0;
        var (first, snapshotBatch, through) = await StartingPointAsync(followedThrough, lastCommitted, earliestLogged, snapshots: null).ConfigureAwait(false);
        lastCommitted = through;
        if (first == 0 && snapshotBatch is null && earliestLogged > 0) return null; // nothing to start from yet: the holder's next snapshot will be

        await RebuildCommittedAsync(first, lastCommitted).ConfigureAwait(false);
        return lastCommitted < 0 ? null : lastCommitted;
    }

    /// <summary>
    /// Where rebuilding starts: after <paramref name="followedThrough"/> when a standby's state can be continued;
    /// otherwise from nothing, after the newest trustworthy snapshot (restored here). Returns the first batch to
    /// rebuild, the snapshot restored, and the newest committed batch (a snapshot proves its batch committed even
    /// when the commit file is damaged). <paramref name="snapshots"/> is listed here when not given.
    /// </summary>
    private async Task<(long First, long? SnapshotBatch, long LastCommitted)> StartingPointAsync(
        long? followedThrough, long lastCommitted, long earliestLogged, List<(long Batch, string Name)>? snapshots)
    {
        if (followedThrough is long followed && Continues(followed, lastCommitted, earliestLogged)) return (followed + 1, null, lastCommitted);

        // From nothing: a standby's step that failed half-way (its holder deleted a file under it) left state behind.
        _state.Clear();
        _planner.Clear();
        snapshots ??= await _log.ListAsync("state", CancellationToken.None).ConfigureAwait(false);
        long? snapshotBatch = await RestoreNewestSnapshotAsync(snapshots).ConfigureAwait(false);
        return ((snapshotBatch ?? -1) + 1, snapshotBatch, Math.Max(lastCommitted, snapshotBatch ?? -1));
    }

    /// <summary>Whether state rebuilt through <paramref name="followed"/> can be continued: the logs of every batch after it are still there.</summary>
    private static bool Continues(long followed, long lastCommitted, long earliestLogged) =>
        followed <= lastCommitted && (followed == lastCommitted || followed + 1 >= earliestLogged);

    /// <summary>Rebuilds committed batches <paramref name="first"/> to <paramref name="lastCommitted"/>, each from its commit's state delta, or by replaying its logged ranges.</summary>
    private async Task<(long Replayed, long FromDeltas)> RebuildCommittedAsync(long first, long lastCommitted)
    {
        var ct = CancellationToken.None;
        long replayed = 0, fromDeltas = 0;
        for (long b = first; b <= lastCommitted; b++)
        {
            var plan = await ReadCommittedPlanAsync(b).ConfigureAwait(false);
            var delta = await _log.ReadCommitDeltaAsync(CheckpointLog.Name("commits", b), ct).ConfigureAwait(false);
            if (delta is not null && _state.Count > 0)
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

                _planner.Advance(plan);
                fromDeltas++;
                continue;
            }

            await _replay(plan).ConfigureAwait(false);
            replayed++;
        }

        return (replayed, fromDeltas);
    }

    /// <summary>
    /// The newest batch an intact commit file proves, or an intact offsets file of the batch after it:
    /// offsets/N+1 is written only after batch N committed, so the newest intact offsets file proves the
    /// commit of the batch before it (commit files are not fsynced; see <see cref="CheckpointLog"/>).
    /// </summary>
    private async Task<long> LastCommittedAsync(List<(long Batch, string Name)> commits, List<(long Batch, string Name)> offsets)
    {
        long lastCommitted = -1;
        foreach (var (batch, name) in commits.AsEnumerable().Reverse())
        {
            if (await _log.IsValidCommitAsync(name, CancellationToken.None).ConfigureAwait(false))
            {
                lastCommitted = batch;
                break;
            }
        }

        foreach (var (batch, name) in offsets.AsEnumerable().Reverse())
        {
            if (batch - 1 <= lastCommitted) break;
            try
            {
                await _log.ReadOffsetsAsync(name, CancellationToken.None).ConfigureAwait(false);
                return batch - 1;
            }
            catch (CheckpointCorruptException)
            {
            }
        }

        return lastCommitted;
    }

    /// <summary>Restores the newest snapshot that is intact, of this checkpoint, and agrees with its batch's plan; returns its batch.</summary>
    private async Task<long?> RestoreNewestSnapshotAsync(List<(long Batch, string Name)> snapshots)
    {
        foreach (var (batch, name) in snapshots.AsEnumerable().Reverse())
        {
            try
            {
                var body = await _log.ReadSnapshotAsync(name, CancellationToken.None).ConfigureAwait(false);
                OffsetRecord? plannedThere = null;
                try
                {
                    plannedThere = await _log.ReadOffsetsAsync(CheckpointLog.Name("offsets", batch), CancellationToken.None).ConfigureAwait(false);
                }
                catch (CheckpointCorruptException)
                {
                    // Without the batch's own plan the snapshot's positions are checked against nothing; the
                    // snapshot is still intact and of this checkpoint and batch.
                }

                RestoreSnapshot(body, name, batch, plannedThere);
                return batch;
            }
            catch (Exception e) when (e is CheckpointCorruptException or MessagePackException)
            {
                // A damaged or foreign snapshot is never trusted: fall back to the previous one and replay more batches.
                _state.Clear();
                _planner.Clear();
            }
        }

        return null;
    }

    /// <summary>The logged plan of committed batch <paramref name="batch"/>, checked to continue the batch before it and to lie within the sources.</summary>
    private async Task<OffsetRecord> ReadCommittedPlanAsync(long batch)
    {
        try
        {
            string planName = CheckpointLog.Name("offsets", batch);
            if (_disagreeing.TryGetValue(batch, out string? disagreement)) throw new CheckpointCorruptException(disagreement);
            var plan = await _log.ReadOffsetsAsync(planName, CancellationToken.None).ConfigureAwait(false);
            _planner.CheckContinuity(plan, planName);
            await _planner.CheckWithinSourcesAsync(plan, planName).ConfigureAwait(false);
            return plan;
        }
        catch (CheckpointCorruptException e)
        {
            var commit = await _log.ReadCommitAsync(CheckpointLog.Name("commits", batch), CancellationToken.None).ConfigureAwait(false);
            throw new CheckpointMismatchException(
                $"Cannot recover the checkpoint '{Location}': batch {batch} is committed"
                + (commit.Intact ? " (its commit file is intact)" : "")
                + $", but its offsets file, which holds the input positions that batch read up to, is unusable: {e.Message} "
                + $"Without it neither the positions nor the state after batch {batch} can be rebuilt. Restore the checkpoint from a backup, or start a new checkpoint.", e);
        }
    }

    /// <summary>
    /// The logged plan of the batch after the last committed one, if intact and continuing it: it runs next with
    /// exactly those ranges. Offsets files of later batches (and an unusable one) are deleted: never committed,
    /// nothing downstream depends on their ranges.
    /// </summary>
    private async Task<OffsetRecord?> PendingPlanAsync(List<(long Batch, string Name)> offsets, long lastCommitted)
    {
        OffsetRecord? pending = null;
        foreach (var (batch, name) in offsets.Where(o => o.Batch > lastCommitted))
        {
            if (batch == lastCommitted + 1)
            {
                try
                {
                    pending = await _log.ReadOffsetsAsync(name, CancellationToken.None).ConfigureAwait(false);
                    _planner.CheckContinuity(pending, name);
                    await _planner.CheckWithinSourcesAsync(pending, name).ConfigureAwait(false);
                    continue;
                }
                catch (CheckpointCorruptException)
                {
                    pending = null; // planned again
                }
            }

            await _log.Store.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
        }

        return pending;
    }

    /// <summary>Applies the state delta of a committed batch, after judging every operator's part by the rules of a restore.</summary>
    private void ApplyDelta(byte[] delta, OffsetRecord plan)
    {
        var accepted = new List<DeltaPart>();
        var problems = new List<string>();
        foreach (var part in DeltaCodec.Read(delta))
        {
            if (part.Delta is null)
                throw new CheckpointCorruptException(
                    $"Checkpoint file '{CheckpointLog.Name("commits", plan.BatchId)}' passed its checksum, but its state delta for operator '{part.OperatorId}' has no 'delta' entry: "
                    + "it was not written by PipelineDsl. Restore the checkpoint from a backup, or start a new checkpoint.");
            var decision = RestoreCompatibility.DecideOperator(part.OperatorId, part.Version, null, part.KeySchema, part.ValueSchema, null, _definition.Manifest, _storedManifest?.Find(part.OperatorId));
            switch (decision.Action)
            {
                case StateAction.Keep or StateAction.Migrate:
                    if (_state.FormatProblem(part.OperatorId, part.Format, CheckpointLog.Name("commits", plan.BatchId)) is { } tooNew) problems.Add(tooNew);
                    else accepted.Add(part);
                    break;
                case StateAction.Incompatible:
                    problems.Add(decision.Problem!);
                    break;
            }
        }

        if (problems.Count > 0)
        {
            throw new CheckpointIncompatibleException(
                $"The checkpoint '{Location}' (the state delta of batch {plan.BatchId}) cannot be restored by this build of pipeline '{_definition.PipelineId}':\n  - "
                + string.Join("\n  - ", problems) + "\nFix the build as described, or start a new checkpoint.", problems);
        }

        foreach (var part in accepted) _state.ApplyDelta(part.OperatorId, part.Delta!.Value, part.Version);
    }

    /// <summary>
    /// Restores a snapshot: first reads what it holds, checks its structure and its agreement with its batch's
    /// plan, then decides for every operator, then decodes. Nothing is restored unless everything can be.
    /// </summary>
    private void RestoreSnapshot(ReadOnlyMemory<byte> bytes, string name, long batch, OffsetRecord? plannedThere)
    {
        CheckpointCorruptException Disagree(string message)
        {
            _disagreeing[batch] = $"{message} Checkpoint files '{name}' and '{CheckpointLog.Name("offsets", batch)}' disagree about where batch {batch} ended, so neither is trusted.";
            return new CheckpointCorruptException(message);
        }

        var body = SnapshotCodec.Read(bytes, name).CheckStructure(name, batch);
        var positions = body.Positions!;
        var operators = body.Operators!;
        if (plannedThere is not null)
        {
            foreach (var (source, ranges) in plannedThere.Sources)
            {
                if (!positions.TryGetValue(source, out var stored0)) throw Disagree($"Checkpoint file '{name}' has no positions of source '{source}', which batch {batch} read: it is not used.");
                foreach (var (partition, range) in ranges)
                {
                    if (!stored0.TryGetValue(partition, out long position) || position != range.To)
                        throw Disagree(
                            $"Checkpoint file '{name}' says source '{source}', partition '{partition}' was read up to {(stored0.TryGetValue(partition, out long p0) ? p0.ToString(CultureInfo.InvariantCulture) : "nothing")}, but batch {batch} read up to {range.To}: it does not belong to this checkpoint's batch {batch} and is not used.");
                }
            }
        }

        PipelineManifest? stored = null;
        if (body.ManifestJson is not null)
        {
            try
            {
                stored = PipelineManifest.Parse(body.ManifestJson);
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

        var decisions = RestoreCompatibility.Decide(stored, operators.ToDictionary(p => p.Key, p => (p.Value.Version, p.Value.Fingerprint)), positions.Keys, _definition.Manifest);
        var problems = decisions.Where(d => d.Action == StateAction.Incompatible).Select(d => d.Problem!).ToList();
        foreach (var d in decisions.Where(d => d.Action is StateAction.Keep or StateAction.Migrate))
        {
            if (_state.FormatProblem(d.OperatorId, operators[d.OperatorId].Format, name) is { } tooNew) problems.Add(tooNew);
        }

        if (problems.Count > 0)
        {
            throw new CheckpointIncompatibleException(
                $"The checkpoint '{Location}' ({name}) cannot be restored by this build of pipeline '{_definition.PipelineId}':\n  - "
                + string.Join("\n  - ", problems)
                + "\nNothing was changed. Fix the build as described, or start a new checkpoint.", problems);
        }

        foreach (var d in decisions.Where(d => d.Action is StateAction.Keep or StateAction.Migrate))
            _state.Restore(d.OperatorId, operators[d.OperatorId].Entries, operators[d.OperatorId].Format, d.StoredVersion);

        _planner.Restore(positions);
        if (stored is not null) _storedManifest = stored;
    }
}
