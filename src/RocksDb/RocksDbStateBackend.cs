using System;
using System.IO;
using PipelineDsl.RocksDb;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl;

/// <summary>
/// Keeps keyed state in RocksDB on local disk instead of on the managed heap: state larger than memory, a memory use
/// bounded by <see cref="BlockCacheBytes"/> and <see cref="WriteBufferBytes"/>, and incremental snapshots (a snapshot
/// uploads only the database files the checkpoint store does not have yet; files are shared between snapshots and
/// deleted with the last snapshot that lists them).
/// </summary>
/// <remarks>
/// <para>
/// Each keyed operator has its own database under <see cref="Directory"/>/<c>pipeline</c>/<c>operator</c>. The local
/// database is a working copy: it is rebuilt from the checkpoint at every start (from the files kept locally by the
/// previous run where they are intact, downloaded otherwise), so it is never trusted across a crash and needs no
/// write-ahead log of its own. Each batch's changes still go into its commit file, in the same layout as the
/// in-memory backend's, so recovery is the newest snapshot plus the deltas after it.
/// </para>
/// <para>
/// A checkpoint is restored by the backend that wrote it; this backend also loads a snapshot of the in-memory
/// backend, so a pipeline can move to RocksDB without starting over. An operator whose state version rises is
/// migrated eagerly when the snapshot is restored (every value decoded by its <c>[StateMigration]</c> and written
/// back), so values in the database always have the operator's current version.
/// </para>
/// </remarks>
public sealed class RocksDbStateBackend : StateBackend
{
    private Cache? _blockCache;

    /// <summary>Creates the backend.</summary>
    /// <param name="directory">A local directory for the operators' databases and the files kept for a fast restart; not shared with another pipeline run on the same checkpoint.</param>
    public RocksDbStateBackend(string directory)
    {
        Directory = directory;
    }

    /// <summary>The local directory of the databases.</summary>
    public string Directory { get; }

    /// <summary>The block cache shared by all operators' databases in this process: reads of state are served from it. Default 64 MiB.</summary>
    public long BlockCacheBytes { get; init; } = 64L << 20;

    /// <summary>The size of each operator database's write buffer (its memtable; two may exist at once). Default 32 MiB.</summary>
    public long WriteBufferBytes { get; init; } = 32L << 20;

    /// <inheritdoc />
    public override string Name => "rocksdb";

    internal override void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory)) throw new ArgumentException("RocksDbStateBackend.Directory is not set: give a local directory for the state databases.");
        if (BlockCacheBytes < 1 << 20) throw new ArgumentException($"RocksDbStateBackend.BlockCacheBytes is {BlockCacheBytes}: give at least 1 MiB (1048576).");
        if (WriteBufferBytes < 1 << 20) throw new ArgumentException($"RocksDbStateBackend.WriteBufferBytes is {WriteBufferBytes}: give at least 1 MiB (1048576).");
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"RocksDbStateBackend.Directory '{Directory}' cannot be created: {e.Message}", e);
        }
    }

    internal Cache BlockCache => _blockCache ??= Cache.CreateLru((ulong)BlockCacheBytes);

    internal override IExternalKeyedStore<TKey, TValue>? CreateKeyedStore<TKey, TValue>(KeyedStoreSpec<TKey, TValue> spec) =>
        new RocksDbKeyedStore<TKey, TValue>(this, spec);

    internal override ISessionStore<TKey, T> CreateSessionStore<TKey, T>(SessionStoreSpec<TKey, T> spec) =>
        new RocksDbSessionStore<TKey, T>(this, spec);

    internal override IPaneStore<TKey, T> CreatePaneStore<TKey, T>(PaneStoreSpec<TKey, T> spec) =>
        new RocksDbPaneStore<TKey, T>(this, spec);

    internal override IJoinBuffer<TKey, TLeft, TRight> CreateJoinBuffer<TKey, TLeft, TRight>(JoinBufferSpec<TKey, TLeft, TRight> spec) =>
        new RocksDbJoinBuffer<TKey, TLeft, TRight>(this, spec);
}
