using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl.Execution;

/// <summary>An operator whose state is one value per key, readable between batches (by a test driver).</summary>
internal interface IKeyedStateView<TKey, TState>
{
    IEnumerable<(TKey Key, TState State, long LastSeenBatch)> Entries();
}

/// <summary>A stream join whose kept records are readable between batches (by a test driver).</summary>
internal interface IJoinStateView<TKey, TLeft, TRight>
{
    IEnumerable<(TKey Key, IReadOnlyList<TLeft> Left, IReadOnlyList<TRight> Right)> Entries();
}

/// <summary>An executor whose state crosses batches and is written into snapshots.</summary>
internal interface IStatefulExecutor
{
    OperatorNode Node { get; }

    /// <summary>The number of keys held.</summary>
    long KeyCount { get; }

    /// <summary>
    /// What the last batch wrote into this operator's state: keys it updated (keyed state, sessions), key-panes (event-time
    /// windows) or records kept (stream joins); null for an operator that does not count them.
    /// </summary>
    long? UpdatedCount => null;

    /// <summary>
    /// The layout of this executor's snapshot entries and deltas, recorded with them. A checkpoint whose format
    /// is newer than the build's is refused before anything is decoded; a change of layout raises the number
    /// and keeps reading the older ones.
    /// </summary>
    int StateFormat { get; }

    /// <summary>Writes all state as one MessagePack value: an array of per-key entries.</summary>
    void WriteSnapshot(MessagePackWriter writer);

    /// <summary>The layout of this executor's snapshot part: <see cref="StateFormat"/>, unless its state backend writes its own.</summary>
    int SnapshotFormat => StateFormat;

    /// <summary>
    /// Writes the snapshot part after batch <paramref name="batchId"/> (<see cref="WriteSnapshot"/>, unless a state backend
    /// lists files instead) and returns the files to put into the checkpoint store before the snapshot file.
    /// </summary>
    IReadOnlyList<SharedStateUpload> WriteSnapshotFiles(MessagePackWriter writer, long batchId)
    {
        WriteSnapshot(writer);
        return Array.Empty<SharedStateUpload>();
    }

    /// <summary>Restores a snapshot part of <paramref name="format"/>, reading shared files through <paramref name="files"/> where it lists them.</summary>
    void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, long storedVersion, SharedStateFiles files)
    {
        var reader = new MessagePackReader(part.Span);
        RestoreSnapshot(ref reader, storedVersion);
    }

    /// <summary>
    /// Why this executor cannot decode state stored in <paramref name="storedFormat"/> (a newer layout than it knows),
    /// or null when it can. A format left unrecorded (older files) is read by its shape.
    /// </summary>
    string? FormatProblem(long? storedFormat, string file) =>
        storedFormat is long stored && stored > StateFormat
            ? $"operator '{Node.Id}': '{file}' holds its state in format {stored}, written by a newer build; this build reads formats up to {StateFormat}. Run a build at least as new as the one that wrote the checkpoint."
            : null;

    /// <summary>
    /// Replaces all state with the entries of a snapshot written by <see cref="WriteSnapshot"/> of
    /// <paramref name="storedVersion"/> of this operator (decoded through its migrations when older).
    /// </summary>
    void RestoreSnapshot(ref MessagePackReader reader, long storedVersion);

    /// <summary>Drops all state.</summary>
    void Clear();

    /// <summary>Writes what batch <paramref name="batchId"/> changed (one MessagePack value).</summary>
    void WriteDelta(MessagePackWriter writer, long batchId);

    /// <summary>Applies a delta written by <see cref="WriteDelta"/> of <paramref name="storedVersion"/> of this operator.</summary>
    void ApplyDelta(ref MessagePackReader reader, long storedVersion);
}
