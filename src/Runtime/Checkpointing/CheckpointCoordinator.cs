using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Execution;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// Writes a running pipeline's checkpoint: each batch's offsets before its output reaches a sink, its commit
/// (with the state delta) after, a snapshot every <c>CheckpointInterval</c> batches and the retention after
/// it. Commits and snapshots are serialized on the driver's thread (so they hold exactly the state after
/// their batch) and written in the background while the next batches run; <see cref="FinishAsync"/> waits
/// for them, and <see cref="DrainQuietlyAsync"/> after a failure.
/// </summary>
internal sealed class CheckpointCoordinator
{
    private readonly CheckpointLog _log;
    private readonly BatchPlanner _planner;
    private readonly StatefulOperators _state;
    private readonly string _manifestJson;
    private readonly bool _writeStateDeltas;
    private readonly int _retainedSnapshots;
    private readonly (string Id, ISourceCommitListener Listener)[] _commitListeners;

    // Two sets of commit buffers: batch N's commit file is written in the background while batch N+1 runs.
    private readonly CommitBuffers[] _commitBuffers = { new(), new() };
    private Task _commitWrite = Task.CompletedTask;
    private readonly CommitBuffers _snapshotBuffers = new();
    private Task _snapshotWrite = Task.CompletedTask;
    // For the listeners' OnNoLongerNeededBelowAsync: each listener's positions at the previous commit (a pipeline without
    // state), and at each snapshot this run wrote, newest last (a pipeline with state).
    private IReadOnlyDictionary<string, long>[]? _previousCommit;
    private readonly Queue<IReadOnlyDictionary<string, long>[]> _snapshotPositions = new();

    public CheckpointCoordinator(
        CheckpointLog log,
        BatchPlanner planner,
        StatefulOperators state,
        string manifestJson,
        PipelineRunnerOptions options,
        IEnumerable<(string Id, ISourceCommitListener Listener)> commitListeners)
    {
        _log = log;
        _planner = planner;
        _state = state;
        _manifestJson = manifestJson;
        _writeStateDeltas = options.WriteStateDeltas;
        _retainedSnapshots = options.RetainedSnapshots;
        _commitListeners = commitListeners.ToArray();
    }

    /// <summary>The newest batch a snapshot was taken after, in this run or by the restore (-1: none).</summary>
    public long LastSnapshotBatch { get; set; } = -1;

    /// <summary>
    /// Writes batch N's plan durably. Computing a batch is pure, so the write overlaps with reading and
    /// processing; the driver awaits it before anything reaches a sink.
    /// </summary>
    public Task WriteOffsetsAsync(OffsetRecord plan) => _log.WriteOffsetsAsync(plan, CancellationToken.None);

    /// <summary>
    /// Serializes batch N's commit file (with its state delta) now, and writes it while the next batch runs.
    /// That is safe because commit files are not the only proof of a commit: the durable offsets of batch
    /// N+1 prove commit N, and a commit whose delta is lost only makes recovery re-run batch N from its
    /// logged range. The write is awaited before the next commit (so commits land in order and a buffer
    /// is never reused while in flight) and before the run ends.
    /// </summary>
    public void StartCommit(CommitRecord record)
    {
        _commitWrite.GetAwaiter().GetResult(); // waits for, or surfaces the failure of, the previous commit's write

        var buffers = _commitBuffers[record.BatchId & 1];
        Action<MessagePackWriter>? delta = _state.Count == 0 || !_writeStateDeltas ? null : w => _state.WriteDelta(w, record.BatchId);
        string batch = record.BatchId.ToString(CultureInfo.InvariantCulture);
        var published = _commitListeners.Select(l => (l.Listener, _planner.CopyOf(l.Id))).ToArray();
        // Without state a restart re-runs at most the newest committed batch (when its commit file is lost) from its
        // logged range, which starts where the batch before it ended.
        var released = _state.Count == 0 ? _previousCommit : null;
        if (_state.Count == 0) _previousCommit = published.Select(p => p.Item2).ToArray();
        _commitWrite = WriteAsync();

        async Task WriteAsync()
        {
            await _log.WriteCommitAsync(record, delta, buffers, CancellationToken.None).ConfigureAwait(false);
            FaultInjection.Hit("after-commit", batch);
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

            if (released is not null) await ReleaseAsync(released).ConfigureAwait(false);
        }
    }

    /// <summary>Tells each listener the positions below which no recovery reads its source again.</summary>
    private async Task ReleaseAsync(IReadOnlyDictionary<string, long>[] positions)
    {
        for (int i = 0; i < _commitListeners.Length; i++)
        {
            try
            {
                await _commitListeners[i].Listener.OnNoLongerNeededBelowAsync(positions[i], CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A source that could not delete now deletes more the next time; the checkpoint is unaffected.
            }
        }
    }

    /// <summary>
    /// Serializes all state now (so the snapshot is exactly the state after <paramref name="batchId"/>)
    /// and writes it in the background while the next batches run; the write (and the retention after it)
    /// is awaited before the next snapshot and before the run ends. At most one snapshot is in flight: a slow
    /// disk slows the pipeline instead of piling up memory.
    /// </summary>
    public async Task SnapshotAsync(long batchId)
    {
        await _snapshotWrite.ConfigureAwait(false);
        StartSnapshot(batchId);
    }

    /// <summary>Starts the snapshot after <paramref name="batchId"/> without waiting for a previous one (which it then follows).</summary>
    public void StartSnapshot(long batchId)
    {
        // Reuse the snapshot buffers when the previous write is done (it had CheckpointInterval batches to
        // finish): a fresh multi-megabyte buffer per snapshot lands in the large object heap, whose budget
        // then turns every collection into a full one. A write still running keeps its buffers.
        var previous = _snapshotWrite;
        var buffers = previous.IsCompleted ? _snapshotBuffers : new CommitBuffers();
        SnapshotCodec.Write(buffers.Body, batchId, _manifestJson, _planner.Positions, _state.SnapshotParts(batchId));
        var uploads = _state.TakeUploads();
        string name = CheckpointLog.Name("state", batchId);
        var listed = _state.UsesSharedFiles ? SharedStateFiles.ListedBy(SnapshotCodec.Read(buffers.Body.WrittenMemory, name), name).ToHashSet(StringComparer.Ordinal) : null;
        LastSnapshotBatch = batchId;
        // Once every snapshot retention keeps is one of this run's, the oldest of them bounds what a recovery reads.
        IReadOnlyDictionary<string, long>[]? released = null;
        if (_commitListeners.Length > 0)
        {
            _snapshotPositions.Enqueue(_commitListeners.Select(l => _planner.CopyOf(l.Id)).ToArray());
            while (_snapshotPositions.Count > _retainedSnapshots) _snapshotPositions.Dequeue();
            if (_snapshotPositions.Count == _retainedSnapshots) released = _snapshotPositions.Peek();
        }

        _snapshotWrite = Task.Run(async () =>
        {
            await previous.ConfigureAwait(false);
            // An incremental snapshot's new files first: a snapshot file is only ever written once all it lists is stored.
            if (uploads.Count > 0) await _state.SharedFiles!.UploadAsync(uploads, CancellationToken.None).ConfigureAwait(false);
            FaultInjection.Hit("after-shared-upload", name);
            await _log.WriteSnapshotAsync(batchId, buffers, CancellationToken.None).ConfigureAwait(false);
            await _log.ApplyRetentionAsync(_retainedSnapshots, CancellationToken.None).ConfigureAwait(false);
            if (listed is not null)
            {
                _listedBySnapshot[name] = listed;
                await CollectSharedGarbageAsync().ConfigureAwait(false);
            }
            if (released is not null) await ReleaseAsync(released).ConfigureAwait(false);
        });
    }

    // The shared files each retained snapshot lists: those this run wrote, and those of older snapshots read once.
    // Only the snapshot writes touch it, and they run one after another.
    private readonly Dictionary<string, HashSet<string>> _listedBySnapshot = new(StringComparer.Ordinal);

    /// <summary>
    /// Deletes the shared state files no retained snapshot lists (replaced by compaction, or uploaded for a snapshot
    /// that a crash kept from being written). Runs after retention, in the snapshot writes' sequence, so never while a
    /// snapshot's files are being uploaded. A retained snapshot that cannot be read is not trusted by recovery either.
    /// </summary>
    private async Task CollectSharedGarbageAsync()
    {
        var retained = await _log.ListAsync("state", CancellationToken.None).ConfigureAwait(false);
        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, name) in retained)
        {
            if (!_listedBySnapshot.TryGetValue(name, out var files))
            {
                try
                {
                    var body = SnapshotCodec.Read(await _log.ReadSnapshotAsync(name, CancellationToken.None).ConfigureAwait(false), name);
                    files = SharedStateFiles.ListedBy(body, name).ToHashSet(StringComparer.Ordinal);
                }
                catch (Exception e) when (e is CheckpointCorruptException or MessagePackException)
                {
                    files = new HashSet<string>(StringComparer.Ordinal);
                }

                _listedBySnapshot[name] = files;
            }

            listed.UnionWith(files);
        }

        foreach (var gone in _listedBySnapshot.Keys.Except(retained.Select(r => r.Name)).ToList()) _listedBySnapshot.Remove(gone);
        await _state.SharedFiles!.CollectGarbageAsync(listed, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Waits for the commit and snapshot writes in flight; surfaces their failures.</summary>
    public async Task FinishAsync()
    {
        await _commitWrite.ConfigureAwait(false);
        await _snapshotWrite.ConfigureAwait(false);
    }

    /// <summary>After a failure: waits for the writes in flight (so the lock outlives them); their own failures are secondary.</summary>
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
}
