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

/// <summary>
/// Keyed state across batches. Keys are spread over shards (one per core) processed in parallel; each
/// output goes back to its input record's index, so the output order is the input order whatever the
/// shard count. Idle keys expire after <c>IdleTimeoutBatches</c> batches without a record.
/// </summary>
/// <remarks>
/// State lives in a <see cref="KeyedStateStore{TKey, TValue}"/> on the heap (sharded, the fast path), or, with a state
/// backend that keeps it elsewhere (RocksDB), in an <see cref="IExternalKeyedStore{TKey, TValue}"/> read and written
/// through a per-batch cache, one record after another. Deltas have one layout either way.
/// </remarks>
internal sealed class UpdateStateExecutor<TKey, TIn, TState, TOut> : OperatorExecutor<TOut>, IStatefulExecutor, IKeyedStateView<TKey, TState>, IDisposable where TKey : notnull
{
    private readonly OperatorExecutor<TIn> _input;
    private readonly UpdateStateNode<TKey, TIn, TState, TOut> _node;
    private readonly KeyedStateStore<TKey, TState> _store;
    private readonly IExternalKeyedStore<TKey, TState>? _external;

    public UpdateStateExecutor(UpdateStateNode<TKey, TIn, TState, TOut> node, OperatorExecutor<TIn> input, int parallelism, StateBackend? backend = null, string pipelineId = "") : base(node)
    {
        _node = node;
        _input = input;
        _external = backend?.CreateKeyedStore(new KeyedStoreSpec<TKey, TState>(pipelineId, node.Id, node.KeyFormatter, node.StateFormatter, node.IdleTimeoutBatches > 0));
        // With an external store the in-memory one stays empty (one shard): it is only the fast path's.
        _store = new KeyedStateStore<TKey, TState>(node.Id, _external is null ? parallelism : 1, node.KeyFormatter, node.StateFormatter);
        _indices = Enumerable.Range(0, _store.ShardCount).Select(_ => Array.Empty<int>()).ToArray();
        _results = Enumerable.Range(0, _store.ShardCount).Select(_ => Array.Empty<Cell<TOut>>()).ToArray();
    }

    /// <summary>The layout of <see cref="KeyedStateStore{TKey, TValue}"/>.</summary>
    public int StateFormat => KeyedStateStore<TKey, TState>.Format;

    public long KeyCount => _external?.Count ?? _store.Count;

    public long? UpdatedCount => _external?.TouchedCount ?? _store.TouchedCount;

    /// <summary>The layout of this operator's snapshot part: the in-memory entries, or the external store's file list.</summary>
    public int SnapshotFormat => _external is null ? StateFormat : SharedStateFileSet.Format;

    public override void Execute(BatchContext batch)
    {
        if (_external is not null)
        {
            ExecuteExternal(_external, batch.BatchId);
            return;
        }

        _store.BeginBatch();
        var input = _input.Output;
        int n = input.Count;
        if (n > 0)
        {
            if (_store.ShardCount == 1 || batch.Parallelism <= 1 || n < Chunks.ParallelThreshold)
                ExecuteSequential(input, batch.BatchId);
            else
                ExecuteSharded(input, batch);
        }

        if (_node.IdleTimeoutBatches > 0) ExpireIdle(batch.BatchId);
    }

    // How many records ahead the loops hint the CPU to load a record or key object, a key's bucket, and then its
    // slot (see CpuHints): far enough for the loads to arrive, near enough to still be cached.
    private const int ObjectAhead = 8, BucketAhead = 16, SlotAhead = 8;

    // Scratch arrays reused from batch to batch (per shard where a shard writes them). Keys and results sit in
    // struct cells: storing a reference into a TKey[] or TOut[] of shared generic code costs a covariance check
    // per record (and, for a key, a cache miss on its type); a store into a struct field costs neither.
    private Cell<TKey>[] _keys = Array.Empty<Cell<TKey>>();
    private int[] _hashes = Array.Empty<int>();
    private int[] _shardOf = Array.Empty<int>();
    private int[][] _indices = Array.Empty<int[]>();
    private Cell<TOut>[][] _results = Array.Empty<Cell<TOut>[]>();

    private void EnsureScratch(int n)
    {
        if (_keys.Length >= n) return;
        _keys = new Cell<TKey>[n];
        _hashes = new int[n];
        _shardOf = new int[n];
    }

    /// <summary>
    /// The keys and hashes of records [<paramref name="start"/>, <paramref name="end"/>): first every key, then every
    /// hash, two tight loops that each hint the object they will read some iterations ahead (the record, the key).
    /// </summary>
    private void KeysAndHashes(List<TIn> input, int start, int end)
    {
        var span = CollectionsMarshal.AsSpan(input);
        var keys = _keys;
        var hashes = _hashes;
        var selector = _node.KeySelector;
        for (int i = start; i < end; i++)
        {
            if (i + ObjectAhead < end) CpuHints.PrefetchObject(span[i + ObjectAhead]);
            keys[i].Value = selector(span[i]) ?? throw KeyCheck.NullKey(Node);
        }

        for (int i = start; i < end; i++)
        {
            if (i + ObjectAhead < end) CpuHints.PrefetchObject(keys[i + ObjectAhead].Value);
            hashes[i] = _store.HashOf(keys[i].Value);
        }
    }

    private void ExecuteSequential(List<TIn> input, long batchId)
    {
        int n = input.Count;
        EnsureScratch(n);
        KeysAndHashes(input, 0, n);

        var keys = _keys;
        var hashes = _hashes;
        var span = CollectionsMarshal.AsSpan(input);
        var state = new KeyedState<TState>();
        var target = BeginAppend(n);
        int written = 0;
        for (int i = 0; i < n; i++)
        {
            if (i + BucketAhead < n) _store.PrefetchBucket(_store.ShardOf(hashes[i + BucketAhead]), hashes[i + BucketAhead]);
            if (i + SlotAhead < n) _store.PrefetchSlot(_store.ShardOf(hashes[i + SlotAhead]), hashes[i + SlotAhead]);
            int hash = hashes[i];
            TOut result = Process(_store.ShardOf(hash), state, keys[i].Value, hash, span[i], batchId);
            if (result is not null) target[written++] = result;
        }

        EndAppend(n, written);
        Array.Clear(keys, 0, n);
    }

    private void ExecuteSharded(List<TIn> input, BatchContext batch)
    {
        int n = input.Count;
        EnsureScratch(n);
        var hashes = _hashes;
        var shardOf = _shardOf;
        int shards = _store.ShardCount;
        Parallel.For(0, batch.Parallelism, batch.ParallelOptions, c =>
        {
            int start = (int)((long)n * c / batch.Parallelism), end = (int)((long)n * (c + 1) / batch.Parallelism);
            KeysAndHashes(input, start, end);
            for (int i = start; i < end; i++) shardOf[i] = _store.ShardOf(hashes[i]);
        });

        var counts = new int[shards];
        for (int i = 0; i < n; i++) counts[shardOf[i]]++;
        var fill = new int[shards];
        for (int s = 0; s < shards; s++)
        {
            if (_indices[s].Length < counts[s])
            {
                _indices[s] = new int[counts[s]];
                _results[s] = new Cell<TOut>[counts[s]];
            }
        }

        var indices = _indices;
        for (int i = 0; i < n; i++) indices[shardOf[i]][fill[shardOf[i]]++] = i;

        // Each shard writes only its own dense arrays: no two cores write the same cache lines.
        var keys = _keys;
        var results = _results;
        long batchId = batch.BatchId;
        Parallel.For(0, shards, batch.ParallelOptions, s =>
        {
            var span = CollectionsMarshal.AsSpan(input);
            var mine = indices[s];
            var out_ = results[s];
            // The state handle lives on this core's heap: a shared one written for every record would put both
            // cores on the same cache lines (false sharing).
            var state = new KeyedState<TState>();
            int count = counts[s];
            for (int j = 0; j < count; j++)
            {
                if (j + BucketAhead < count) _store.PrefetchBucket(s, hashes[mine[j + BucketAhead]]);
                if (j + SlotAhead < count) _store.PrefetchSlot(s, hashes[mine[j + SlotAhead]]);
                int i = mine[j];
                out_[j].Value = Process(s, state, keys[i].Value, hashes[i], span[i], batchId);
            }
        });

        // Back into input order: the k-th record of shard s in input order is its k-th result.
        Array.Clear(fill);
        var target = BeginAppend(n);
        int written = 0;
        for (int i = 0; i < n; i++)
        {
            int s = shardOf[i];
            TOut result = results[s][fill[s]++].Value;
            if (result is not null) target[written++] = result;
        }

        EndAppend(n, written);
        Array.Clear(keys, 0, n);
        for (int s = 0; s < shards; s++) Array.Clear(results[s], 0, counts[s]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private TOut Process(int shard, KeyedState<TState> state, TKey key, int hash, TIn record, long batchId)
    {
        ref var slot = ref _store.GetOrAdd(shard, key, hash, out bool existed, out int index);
        state.Reset(existed, slot.Value);
        TOut result = _node.Function(key, record, state);
        if (state.Exists)
        {
            // A key whose state the function left alone stays out of the delta, unless idle expiry needs the
            // batch it was last seen in (a deduplication or distinct stage sees most keys without a change).
            if (existed && !state.IsChanged && _node.IdleTimeoutBatches == 0) return result;
            slot.Value = state.Value;
            _store.Written(shard, ref slot, index, existed, batchId);
        }
        else
        {
            _store.RemoveAt(shard, index, existed);
        }

        return result;
    }

    /// <summary>
    /// One record after another against an external store: each key is read once per batch (then served from the
    /// store's batch cache), and the batch's changes are written to the store at its end.
    /// </summary>
    private void ExecuteExternal(IExternalKeyedStore<TKey, TState> store, long batchId)
    {
        store.BeginBatch();
        var input = CollectionsMarshal.AsSpan(_input.Output);
        var state = new KeyedState<TState>();
        var selector = _node.KeySelector;
        for (int i = 0; i < input.Length; i++)
        {
            var record = input[i];
            TKey key = selector(record) ?? throw KeyCheck.NullKey(Node);
            bool existed = store.TryGet(key, out var value);
            state.Reset(existed, value);
            TOut result = _node.Function(key, record, state);
            if (state.Exists)
            {
                // As in Process: an unchanged key stays out of the delta unless idle expiry needs its last batch.
                if (!existed || state.IsChanged || _node.IdleTimeoutBatches > 0) store.Put(key, state.Value, batchId);
            }
            else if (existed)
            {
                store.Remove(key);
            }

            if (result is not null) Output.Add(result);
        }

        if (_node.IdleTimeoutBatches > 0) ExpireIdle(batchId);
        store.EndBatch();
    }

    private void ExpireIdle(long batchId)
    {
        var expired = new List<(TKey Key, TState Value)>();
        if (_external is not null) _external.Expire(batchId, _node.IdleTimeoutBatches, expired);
        else _store.Expire(batchId, _node.IdleTimeoutBatches, expired);
        if (expired.Count == 0 || _node.OnTimeout is null) return;
        foreach (var (key, value) in KeyOrder.Sorted(expired, _node.KeyFormatter))
        {
            TOut result = _node.OnTimeout(key, value);
            if (result is not null) Output.Add(result);
        }
    }

    public IEnumerable<(TKey Key, TState State, long LastSeenBatch)> Entries() => _external?.Entries() ?? _store.Entries();

    public void WriteSnapshot(MessagePackWriter writer)
    {
        if (_external is not null) throw new InvalidOperationException($"Operator '{Node.Id}' keeps its state in an external store: its snapshot is taken with WriteSnapshotFiles.");
        _store.WriteSnapshot(writer);
    }

    public IReadOnlyList<SharedStateUpload> WriteSnapshotFiles(MessagePackWriter writer, long batchId)
    {
        if (_external is null)
        {
            _store.WriteSnapshot(writer);
            return Array.Empty<SharedStateUpload>();
        }

        return _external.WriteSnapshot(writer, batchId);
    }

    public void Clear()
    {
        if (_external is not null) _external.Clear();
        else _store.Clear();
    }

    public void WriteDelta(MessagePackWriter writer, long batchId)
    {
        if (_external is not null) _external.WriteDelta(writer);
        else _store.WriteDelta(writer, batchId);
    }

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion)
    {
        if (_external is not null) _external.ApplyDelta(ref reader, Decoder(storedVersion));
        else _store.ApplyDelta(ref reader, Decoder(storedVersion));
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion) => _store.RestoreSnapshot(ref reader, Decoder(storedVersion));

    public void RestoreSnapshot(ReadOnlyMemory<byte> part, long? format, long storedVersion, SharedStateFiles files)
    {
        if (_external is not null)
        {
            _external.RestoreSnapshot(part, format, Decoder(storedVersion), files);
            return;
        }

        var reader = new MessagePackReader(part.Span);
        _store.RestoreSnapshot(ref reader, Decoder(storedVersion));
    }

    public string? FormatProblem(long? storedFormat, string file) => SharedStateFileSet.FormatProblem(Node.Id, StateFormat, _external is not null, storedFormat, file);

    public void Dispose() => _external?.Dispose();

    /// <summary>The migration that decodes state of <paramref name="storedVersion"/>; null for this version's own.</summary>
    private StateDecoder<TState>? Decoder(long storedVersion)
    {
        if (storedVersion == _node.Version) return null;
        return _node.Migrations.TryGetValue((int)storedVersion, out var migrate)
            ? migrate
            : throw new InvalidOperationException($"Operator '{Node.Id}' has no migration from version {storedVersion}.");
    }
}

/// <summary>A value held in a struct, so that an array of them is written without the covariance check of a <c>T[]</c> in shared generic code.</summary>
internal struct Cell<T>
{
    public T Value;
}
