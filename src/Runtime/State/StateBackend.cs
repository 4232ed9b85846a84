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
}
