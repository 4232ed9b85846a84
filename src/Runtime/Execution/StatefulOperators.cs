using System;
using System.Collections.Generic;
using System.Linq;
using PipelineDsl.Checkpointing;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl.Execution;

/// <summary>
/// The pipeline's stateful operators as one unit for checkpointing: what goes into a snapshot and a delta,
/// and restoring from them once the recovery planner has decided, per operator, to keep or migrate its state.
/// The formats around each operator's entries belong to <see cref="SnapshotCodec"/> and <see cref="DeltaCodec"/>;
/// the entries themselves to each operator's executor.
/// </summary>
internal sealed class StatefulOperators
{
    private readonly IStatefulExecutor[] _executors;
    private readonly PipelineManifest _manifest;
    // Bytes of each operator's part in the newest snapshot and in the newest delta (of batch _deltaBatch) serialized.
    private readonly long?[] _snapshotBytes;
    private readonly long?[] _deltaBytes;
    private long _deltaBatch = -1;

    // Files the snapshot serialized last lists and the store does not have yet (taken by the coordinator).
    private readonly List<SharedStateUpload> _uploads = new();

    public StatefulOperators(IEnumerable<IStatefulExecutor> executors, PipelineManifest manifest, SharedStateFiles? sharedFiles = null)
    {
        _executors = executors.ToArray();
        SharedFiles = sharedFiles;
        _manifest = manifest;
        _snapshotBytes = new long?[_executors.Length];
        _deltaBytes = new long?[_executors.Length];
    }

    public int Count => _executors.Length;

    /// <summary>The checkpoint store's shared state files (null where nothing reads or writes them, as in the CLI).</summary>
    public SharedStateFiles? SharedFiles { get; }

    /// <summary>Whether some operator's snapshot part lists shared files (a state backend off the heap).</summary>
    public bool UsesSharedFiles => _executors.Any(s => s.SnapshotFormat == SharedStateFileSet.Format);

    public long KeyCount => _executors.Sum(s => s.KeyCount);

    /// <summary>Each stateful operator's keys and sizes after batch <paramref name="batchId"/>, for its progress record.</summary>
    public IReadOnlyList<StateOperatorProgress> Progress(long batchId) => _executors.Select((s, i) => new StateOperatorProgress(s.Node.Id, s.KeyCount)
    {
        Updated = s.UpdatedCount,
        SnapshotBytes = _snapshotBytes[i],
        DeltaBytes = _deltaBatch == batchId ? _deltaBytes[i] : null,
    }).ToArray();

    public void Clear()
    {
        foreach (var s in _executors) s.Clear();
    }

    /// <summary>What each operator's part of a snapshot is written from (its version and fingerprint in this build).</summary>
    /// <summary>What each operator's part of the snapshot after <paramref name="batchId"/> is written from (its version and fingerprint in this build).</summary>
    public IReadOnlyList<SnapshotCodec.OperatorPart> SnapshotParts(long batchId)
    {
        _uploads.Clear();
        return _executors.Select((s, i) =>
        {
            var entry = _manifest.Find(s.Node.Id)!;
            return new SnapshotCodec.OperatorPart(s.Node.Id, entry.Version, entry.StateSchema?.Fingerprint ?? "", s.SnapshotFormat, w =>
            {
                int before = w.Length;
                _uploads.AddRange(s.WriteSnapshotFiles(w, batchId));
                _snapshotBytes[i] = w.Length - before + _uploads.Sum(u => u.File.Size);
            });
        }).ToArray();
    }

    /// <summary>The files the snapshot serialized last needs in the checkpoint store before its own file is written.</summary>
    public IReadOnlyList<SharedStateUpload> TakeUploads()
    {
        var uploads = _uploads.ToArray();
        _uploads.Clear();
        return uploads;
    }

    /// <summary>
    /// What batch <paramref name="batchId"/> changed in every operator, stored in its commit file: recovery applies
    /// these deltas after the newest snapshot instead of re-running the batches, so a restore (even by a new
    /// build) continues from exactly the state of the last committed batch. The schema travels with the delta:
    /// a later build checks it with the rules of a snapshot.
    /// </summary>
    public void WriteDelta(MessagePackWriter w, long batchId)
    {
        _deltaBatch = batchId;
        DeltaCodec.Write(w, _executors.Select((s, i) =>
        {
            var schema = _manifest.Find(s.Node.Id)?.StateSchema;
            return new DeltaCodec.OperatorPart(s.Node.Id, s.Node.Version, schema?.KeySchema ?? "", schema?.ValueSchema ?? "", s.StateFormat, w2 =>
            {
                int before = w2.Length;
                s.WriteDelta(w2, batchId);
                _deltaBytes[i] = w2.Length - before;
            });
        }).ToArray());
    }

    /// <summary>Replaces <paramref name="operatorId"/>'s state with snapshot entries written by <paramref name="storedVersion"/> of it.</summary>
    public void Restore(string operatorId, ReadOnlyMemory<byte> entries, long? format, long storedVersion)
    {
        var executor = Find(operatorId);
        if (format == SharedStateFileSet.Format || executor.SnapshotFormat == SharedStateFileSet.Format)
        {
            executor.RestoreSnapshot(entries, format, storedVersion, SharedFiles ?? throw new InvalidOperationException("No checkpoint store to read shared state files from."));
            return;
        }

        var reader = new MessagePackReader(entries.Span);
        executor.RestoreSnapshot(ref reader, storedVersion);
    }

    /// <summary>Applies one operator's part of a delta written by <paramref name="storedVersion"/> of it.</summary>
    public void ApplyDelta(string operatorId, ReadOnlyMemory<byte> delta, long storedVersion)
    {
        var reader = new MessagePackReader(delta.Span);
        Find(operatorId).ApplyDelta(ref reader, storedVersion);
    }

    /// <summary>
    /// Why this build cannot decode <paramref name="operatorId"/>'s state stored in <paramref name="storedFormat"/>
    /// (a newer layout than its executor knows), or null when it can. A format left unrecorded (older files) is
    /// read by its shape.
    /// </summary>
    public string? FormatProblem(string operatorId, long? storedFormat, string file) => Find(operatorId).FormatProblem(storedFormat, file);

    private IStatefulExecutor Find(string operatorId) => _executors.First(s => s.Node.Id == operatorId);
}
