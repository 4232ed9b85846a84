using System;
using System.Collections.Generic;
using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl
{

/// <summary>
/// Where keyed state lives while a pipeline runs (<see cref="PipelineRunnerOptions.StateBackend"/>).
/// <see cref="InMemory"/> (the default) keeps it on the managed heap and writes all of it into each snapshot;
/// <c>RocksDbStateBackend</c> (package PipelineDsl.RocksDb) keeps it on local disk, bounded in memory, with
/// incremental snapshots. Either way a batch's changes go into its commit in the same format, so recovery is the
/// newest snapshot plus the deltas after it.
/// </summary>
public abstract class StateBackend
{
    // Only this library's backends: a backend is part of the checkpoint's format.
    internal StateBackend()
    {
    }

    /// <summary>State on the managed heap; each snapshot holds all of it. The default.</summary>
    public static StateBackend InMemory { get; } = new InMemoryStateBackend();

    /// <summary>
    /// The backend of new <see cref="PipelineRunnerOptions"/>: <see cref="InMemory"/>. A test assembly sets it to run
    /// its whole suite on another backend (the repository's tests run the state suites on both).
    /// </summary>
    internal static StateBackend Default { get; set; } = InMemory;

    /// <summary>A short name for messages and progress records (for example <c>in-memory</c>, <c>rocksdb</c>).</summary>
    public abstract string Name { get; }

    /// <summary>Checks the backend's settings when a run starts; throws <see cref="ArgumentException"/> naming the one that is wrong.</summary>
    internal virtual void Validate()
    {
    }

    /// <summary>
    /// A store for one keyed operator's state off the managed heap, or null to keep it in memory
    /// (<c>KeyedStateStore</c>).
    /// </summary>
    internal virtual IExternalKeyedStore<TKey, TValue>? CreateKeyedStore<TKey, TValue>(KeyedStoreSpec<TKey, TValue> spec) where TKey : notnull => null;

    /// <summary>A session window's open sessions: on the heap (<c>SessionStore</c>) unless the backend keeps them elsewhere.</summary>
    internal virtual ISessionStore<TKey, T> CreateSessionStore<TKey, T>(SessionStoreSpec<TKey, T> spec) where TKey : notnull =>
        new SessionStore<TKey, T>(spec.OperatorId, spec.KeyFormatter, spec.ValueFormatter);

    /// <summary>A stream join's buffer of kept records: on the heap (<c>JoinBufferStore</c>) unless the backend keeps it elsewhere.</summary>
    internal virtual IJoinBuffer<TKey, TLeft, TRight> CreateJoinBuffer<TKey, TLeft, TRight>(JoinBufferSpec<TKey, TLeft, TRight> spec) where TKey : notnull =>
        new JoinBufferStore<TKey, TLeft, TRight>(spec);

    /// <summary>An event-time window's panes: on the heap (<c>PaneStore</c>) unless the backend keeps them elsewhere.</summary>
    internal virtual IPaneStore<TKey, T> CreatePaneStore<TKey, T>(PaneStoreSpec<TKey, T> spec) where TKey : notnull =>
        new PaneStore<TKey, T>(spec);

    private sealed class InMemoryStateBackend : StateBackend
    {
        public override string Name => "in-memory";
    }
}

}

namespace PipelineDsl.State
{
/// <summary>What a backend needs to create one keyed operator's store.</summary>
/// <param name="PipelineId">The pipeline's id (the store's local directory is named after it).</param>
/// <param name="OperatorId">The operator's id.</param>
/// <param name="KeyFormatter">The key's MessagePack formatter: a stored key is its bytes.</param>
/// <param name="ValueFormatter">The state's formatter, of the operator's current version.</param>
/// <param name="TracksIdleKeys">Whether the operator expires idle keys (the store then keeps keys ordered by the batch that last wrote them).</param>
internal sealed record KeyedStoreSpec<TKey, TValue>(
    string PipelineId,
    string OperatorId,
    IMessagePackFormatter<TKey> KeyFormatter,
    IMessagePackFormatter<TValue> ValueFormatter,
    bool TracksIdleKeys);

/// <summary>
/// One keyed operator's state off the managed heap. A batch reads and writes keys through a cache of the keys it
/// touches (<see cref="TryGet"/>, <see cref="Put"/>, <see cref="Remove"/>); <see cref="EndBatch"/> writes the cache
/// to the store; the cache stays until the next <see cref="BeginBatch"/> so that <see cref="WriteDelta"/> (at commit)
/// reads it. Deltas use the in-memory store's layout (format 1), so a commit reads the same whatever the backend;
/// snapshots are the backend's own (format <see cref="SharedStateFileSet.Format"/>: a list of files in the
/// checkpoint store), and a snapshot of the in-memory layout is loaded too (to switch backends).
/// </summary>
internal interface IExternalKeyedStore<TKey, TValue> : IDisposable where TKey : notnull
{
    long Count { get; }

    /// <summary>Keys the current batch wrote or removed.</summary>
    long TouchedCount { get; }

    void BeginBatch();

    /// <summary>The key's value and the batch that last wrote it; false when it has none.</summary>
    bool TryGet(TKey key, out TValue value);

    void Put(TKey key, TValue value, long batchId);

    void Remove(TKey key);

    /// <summary>Writes the batch's changes to the store (not durably: the commit's delta is the durable copy).</summary>
    void EndBatch();

    /// <summary>Removes every key not written for <paramref name="idleBatches"/> batches up to <paramref name="batchId"/>, into <paramref name="expired"/>; part of the current batch.</summary>
    void Expire(long batchId, long idleBatches, List<(TKey Key, TValue Value)> expired);

    IEnumerable<(TKey Key, TValue Value, long LastSeenBatch)> Entries();

    /// <summary>Writes the current batch's changes in the layout of <see cref="KeyedStateStore{TKey, TValue}.WriteDelta"/>.</summary>
    void WriteDelta(MessagePackWriter writer);

    /// <summary>Applies a delta of the in-memory layout, between batches.</summary>
    void ApplyDelta(ref MessagePackReader reader, StateDecoder<TValue>? migrate);

    void Clear();

    /// <summary>
    /// Takes a snapshot after the current batch: writes its part (a <see cref="SharedStateFileSet"/>) into
    /// <paramref name="writer"/> now, and returns the files that must be in the checkpoint store before the snapshot
    /// file is written (those not uploaded by an earlier snapshot).
    /// </summary>
    IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId);

    /// <summary>Replaces all state with a snapshot part of <paramref name="format"/> (1: entries, as the in-memory store writes; <see cref="SharedStateFileSet.Format"/>: shared files).</summary>
    void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, StateDecoder<TValue>? migrate, SharedStateFiles files);
}

/// <summary>What a backend needs to create one stream join's buffer.</summary>
/// <param name="PipelineId">The pipeline's id (a local directory is named after it).</param>
/// <param name="OperatorId">The join's id, for errors and directories.</param>
/// <param name="KeyFormatter">The join key's formatter: a stored key starts with its bytes.</param>
/// <param name="LeftFormatter">The left records' formatter.</param>
/// <param name="RightFormatter">The right records' formatter.</param>
/// <param name="LeftExpiry">The time after which no record can match a left record (null: records are kept forever).</param>
/// <param name="RightExpiry">Likewise for right records; given together with <paramref name="LeftExpiry"/>.</param>
internal sealed record JoinBufferSpec<TKey, TLeft, TRight>(
    string PipelineId,
    string OperatorId,
    IMessagePackFormatter<TKey> KeyFormatter,
    IMessagePackFormatter<TLeft> LeftFormatter,
    IMessagePackFormatter<TRight> RightFormatter,
    Func<TLeft, long>? LeftExpiry,
    Func<TRight, long>? RightExpiry)
{
    public bool Expires => LeftExpiry is not null;
}

/// <summary>A key's kept records of each side; either list is null until the key keeps one.</summary>
internal sealed class JoinSides<TLeft, TRight>
{
    public List<TLeft>? Left;
    public List<TRight>? Right;

    public bool IsEmpty => (Left is null || Left.Count == 0) && (Right is null || Right.Count == 0);
}

/// <summary>
/// A stream join's state: the records each key keeps from both sides, in the order they were kept, and what the current
/// batch appended and expired (its delta). The join decides what matches and what is late; the buffer what is kept and
/// how it is written. Deltas have one layout whatever the backend (<see cref="JoinBufferStore{TKey, TLeft, TRight}"/>'s
/// format 2), so a commit reads the same on the heap and in RocksDB; a snapshot is the buffer's own
/// (<see cref="SnapshotFormat"/>), and every buffer loads the heap's snapshot layout too (to switch backends).
/// </summary>
internal interface IJoinBuffer<TKey, TLeft, TRight> : IDisposable where TKey : notnull
{
    /// <summary>Keys that keep at least one record.</summary>
    long KeyCount { get; }

    /// <summary>Records the current batch kept, both sides.</summary>
    long AppendedCount { get; }

    /// <summary>The layout of this buffer's snapshot part (2: entries on the heap; <see cref="SharedStateFileSet.Format"/>: files).</summary>
    int SnapshotFormat { get; }

    /// <summary>Starts a batch: forgets what the previous batch appended.</summary>
    void BeginBatch();

    /// <summary>
    /// The key's kept records as a left record of it needs them: <see cref="JoinSides{TLeft, TRight}.Right"/> holds all
    /// the right records kept (<see cref="JoinSides{TLeft, TRight}.Left"/> may hold only this batch's, where the buffer
    /// reads a side only when it is asked for). The lists stay valid until the batch ends.
    /// </summary>
    JoinSides<TLeft, TRight> SidesForLeft(TKey key);

    /// <summary>Likewise for a right record: <see cref="JoinSides{TLeft, TRight}.Left"/> holds all the left records kept, this batch's included.</summary>
    JoinSides<TLeft, TRight> SidesForRight(TKey key);

    /// <summary>Keeps a left record of this batch, after the key's others (part of the batch's delta); <paramref name="sides"/> are the key's.</summary>
    void AddLeft(TKey key, JoinSides<TLeft, TRight> sides, TLeft record);

    /// <summary>Keeps a right record of this batch, after the key's others (part of the batch's delta); <paramref name="sides"/> are the key's.</summary>
    void AddRight(TKey key, JoinSides<TLeft, TRight> sides, TRight record);

    /// <summary>Removes every record whose expiry is below <paramref name="watermark"/>, as part of the current batch.</summary>
    void ExpireBefore(long watermark);

    /// <summary>Ends the batch: what it kept and expired is in the buffer (not durably: the commit's delta is the durable copy).</summary>
    void EndBatch();

    /// <summary>Every key's kept records, both sides in the order they were kept (read between batches, by a test driver).</summary>
    IEnumerable<(TKey Key, IReadOnlyList<TLeft> Left, IReadOnlyList<TRight> Right)> Entries();

    /// <summary>Writes the current batch's changes (format 2).</summary>
    void WriteDelta(MessagePackWriter writer);

    /// <summary>Applies a delta of format 2 or 1, between batches.</summary>
    void ApplyDelta(ref MessagePackReader reader);

    /// <summary>Writes the snapshot part after batch <paramref name="batchId"/> and returns the files to upload before the snapshot file.</summary>
    IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId);

    /// <summary>Replaces all state with a snapshot part of <paramref name="format"/> (2 or unrecorded: the heap's entries; <see cref="SharedStateFileSet.Format"/>: files).</summary>
    void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files);

    void Clear();
}

/// <summary>What a backend needs to create one session window's store.</summary>
/// <param name="PipelineId">The pipeline's id (a local directory is named after it).</param>
/// <param name="OperatorId">The operator's id, for errors and directories.</param>
/// <param name="KeyFormatter">The key's formatter: a stored key is its bytes.</param>
/// <param name="ValueFormatter">The sessions' value formatter.</param>
internal sealed record SessionStoreSpec<TKey, T>(string PipelineId, string OperatorId, IMessagePackFormatter<TKey> KeyFormatter, IMessagePackFormatter<T> ValueFormatter);

/// <summary>
/// A session window's state: each key's open sessions (sorted by start), the keys in the order their sessions come due,
/// and what the current batch changed (its delta). The operator merges and fires sessions; the store keeps them and
/// writes them. Deltas have one layout whatever the backend (<see cref="SessionStore{TKey, T}"/>'s format 2); a snapshot
/// is the store's own (<see cref="SnapshotFormat"/>), and every store loads the heap's snapshot layout too.
/// </summary>
internal interface ISessionStore<TKey, T> : IDisposable where TKey : notnull
{
    long KeyCount { get; }

    /// <summary>Keys whose sessions the current batch changed.</summary>
    long ChangedCount { get; }

    /// <summary>The layout of this store's snapshot part (2: entries on the heap; <see cref="SharedStateFileSet.Format"/>: files).</summary>
    int SnapshotFormat { get; }

    /// <summary>Starts a batch: forgets what the previous batch changed.</summary>
    void BeginBatch();

    /// <summary>The key's sessions (the caller keeps them sorted by start and says when it changed them), empty when it has none.</summary>
    List<Session<T>> SessionsOf(TKey key);

    /// <summary>The key's sessions changed in this batch: its delta entry is written.</summary>
    void Changed(TKey key);

    /// <summary>The key has a session ending at <paramref name="end"/>: it comes due then.</summary>
    void DueAt(TKey key, long end);

    /// <summary>Takes the next key due at or before <paramref name="watermark"/> (long.MaxValue: any), with its sessions.</summary>
    bool TryTakeDue(long watermark, out TKey key, out List<Session<T>>? sessions);

    /// <summary>After firing: drops a key whose sessions all fired, or adds it to <paramref name="requeue"/> at its earliest remaining end.</summary>
    void Settle(TKey key, List<Session<T>> sessions, List<(TKey, long)> requeue);

    /// <summary>Queues the settled keys again.</summary>
    void Requeue(List<(TKey Key, long End)> requeue);

    /// <summary>Ends the batch: what it changed is in the store (not durably: the commit's delta is the durable copy).</summary>
    void EndBatch();

    /// <summary>Every changed key with all its sessions (format 2).</summary>
    void WriteDelta(MessagePackWriter writer);

    /// <summary>Applies a delta of format 2 (changed keys) or 1 (the whole state), between batches.</summary>
    void ApplyDelta(ref MessagePackReader reader);

    /// <summary>Writes the snapshot part after batch <paramref name="batchId"/> and returns the files to upload before the snapshot file.</summary>
    IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId);

    /// <summary>Replaces all state with a snapshot part of <paramref name="format"/> (2 or unrecorded: the heap's entries; <see cref="SharedStateFileSet.Format"/>: files).</summary>
    void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files);

    void Clear();
}

/// <summary>What a backend needs to create one event-time window's pane store.</summary>
/// <param name="PipelineId">The pipeline's id (a local directory is named after it).</param>
/// <param name="OperatorId">The operator's id, for errors and directories.</param>
/// <param name="KeyFormatter">The key's formatter: a stored key ends with its bytes.</param>
/// <param name="ValueFormatter">The partial aggregates' formatter.</param>
/// <param name="Tumbling">Whether the window is tumbling (a pane is a window; the delta names them as windows) or hopping.</param>
internal sealed record PaneStoreSpec<TKey, T>(string PipelineId, string OperatorId, IMessagePackFormatter<TKey> KeyFormatter, IMessagePackFormatter<T> ValueFormatter, bool Tumbling);

/// <summary>
/// An event-time window's state: per pane start, each key's partial aggregate; the legacy whole windows an older build
/// left (hopping windows restored from before panes, until they fire); and what the current batch changed (its delta).
/// The window decides which panes a record and a firing window touch; the store keeps them and writes them. Snapshots
/// and deltas have the layout <see cref="PaneChanges"/> reads; a snapshot is the store's own (<see cref="SnapshotFormat"/>),
/// and every store loads the heap's snapshot layout too (to switch backends).
/// </summary>
internal interface IPaneStore<TKey, T> : IDisposable where TKey : notnull
{
    /// <summary>Key-panes and key-windows held.</summary>
    long KeyCount { get; }

    /// <summary>Key-panes the current batch updated (of panes still held).</summary>
    long UpdatedCount { get; }

    /// <summary>The layout of this store's snapshot part (2: entries on the heap; <see cref="SharedStateFileSet.Format"/>: files).</summary>
    int SnapshotFormat { get; }

    /// <summary>Starts a batch: forgets what the previous batch changed.</summary>
    void BeginBatch();

    /// <summary>
    /// Folds <paramref name="record"/> into the key's value in the pane at <paramref name="paneStart"/> (the record itself
    /// when the key has none there): <c>combine(value, record)</c>. A combine that hands back the value it was given
    /// changes nothing.
    /// </summary>
    void Fold(long paneStart, TKey key, T record, Func<T, T, T> combine);

    /// <summary>The batch's folds are done: windows may fire (read panes) from here on.</summary>
    void EndFolds();

    /// <summary>The starts of the panes held, ascending.</summary>
    IEnumerable<long> PaneStarts { get; }

    /// <summary>The earliest pane held.</summary>
    bool TryGetFirstPane(out long start);

    /// <summary>A pane's entries (none when it is not held).</summary>
    IEnumerable<KeyValuePair<TKey, T>> Pane(long start);

    /// <summary>Removes the pane at <paramref name="start"/>; the removal goes into the batch's delta and its updates leave it.</summary>
    void RemovePane(long start);

    /// <summary>Whether any legacy window is held.</summary>
    bool HasLegacyWindows { get; }

    /// <summary>The starts of the legacy windows held, ascending.</summary>
    IEnumerable<long> LegacyWindowStarts { get; }

    /// <summary>Removes the legacy window at <paramref name="start"/> (fired: part of the delta), adding its entries to <paramref name="into"/>; false when none is held.</summary>
    bool TakeLegacyWindow(long start, Dictionary<TKey, T> into);

    /// <summary>Writes the current batch's changes (the window's format 2).</summary>
    void WriteDelta(MessagePackWriter writer);

    /// <summary>Applies a delta (or the whole state, as builds before incremental deltas wrote it), between batches.</summary>
    void ApplyDelta(ref MessagePackReader reader);

    /// <summary>Writes the snapshot part after batch <paramref name="batchId"/> and returns the files to upload before the snapshot file.</summary>
    IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId);

    /// <summary>Replaces all state with a snapshot part of <paramref name="format"/> (2 or unrecorded: the heap's entries; <see cref="SharedStateFileSet.Format"/>: files).</summary>
    void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files);

    /// <summary>Every entry: panes (<c>Legacy</c> false) by start, then legacy windows (read between batches, by a test driver or a test).</summary>
    IEnumerable<(bool Legacy, long Start, TKey Key, T Value)> Entries();

    void Clear();
}
}
