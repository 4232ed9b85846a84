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

/// <summary>An executor whose state crosses batches and is written into snapshots.</summary>
internal interface IStatefulExecutor
{
    OperatorNode Node { get; }

    /// <summary>The number of keys held.</summary>
    long KeyCount { get; }

    /// <summary>
    /// The layout of this executor's snapshot entries and deltas, recorded with them. A checkpoint whose format
    /// is newer than the build's is refused before anything is decoded; a change of layout raises the number
    /// and keeps reading the older ones.
    /// </summary>
    int StateFormat { get; }

    /// <summary>Writes all state as one MessagePack value: an array of per-key entries.</summary>
    void WriteSnapshot(MessagePackWriter writer);

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

/// <summary>
/// Orders keys by their serialized bytes: a total order that does not depend on hash codes (randomized per
/// process for strings) or on insertion order, so outputs that enumerate keys are the same after a restore.
/// </summary>
internal static class KeyOrder
{
    /// <summary>Sorts <paramref name="items"/> in place by the serialized bytes of their keys (keys are distinct).</summary>
    public static void Sort<TKey, TValue>(List<(TKey Key, TValue Value)> items, IMessagePackFormatter<TKey> formatter)
    {
        if (items.Count <= 1) return;
        var span = CollectionsMarshal.AsSpan(items);
        if (typeof(TKey) == typeof(long) && ReferenceEquals(formatter, MessagePackFormatters.Int64))
        {
            // The common case (ids), without serializing: see CompareAsMessagePack.
            span.Sort(static (a, b) => CompareAsMessagePack(Unsafe.As<TKey, long>(ref a.Key), Unsafe.As<TKey, long>(ref b.Key)));
            return;
        }

        // All keys into one buffer, then sort indexes by their byte ranges: no array per key.
        var writer = new MessagePackWriter(items.Count * 8);
        var ends = new int[items.Count];
        for (int i = 0; i < span.Length; i++)
        {
            formatter.Serialize(writer, span[i].Key);
            ends[i] = writer.Length;
        }

        var order = new int[items.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var bytes = writer.WrittenMemory;
        Array.Sort(order, (x, y) =>
        {
            var all = bytes.Span;
            var a = all[(x == 0 ? 0 : ends[x - 1])..ends[x]];
            var b = all[(y == 0 ? 0 : ends[y - 1])..ends[y]];
            return a.SequenceCompareTo(b);
        });
        var copy = span.ToArray();
        for (int i = 0; i < order.Length; i++) span[i] = copy[order[i]];
    }

    /// <summary>Returns <paramref name="items"/>, sorted in place by <see cref="Sort"/>.</summary>
    public static List<(TKey Key, TValue Value)> Sorted<TKey, TValue>(List<(TKey Key, TValue Value)> items, IMessagePackFormatter<TKey> formatter)
    {
        Sort(items, formatter);
        return items;
    }

    /// <summary>
    /// Compares two longs as their MessagePack encodings compare byte by byte. The writer picks the shortest
    /// form, and first bytes order the forms: positive fixint 0x00-0x7f (the value itself), uint8-uint64
    /// 0xcc-0xcf, int8-int64 0xd0-0xd3, negative fixint 0xe0-0xff. Within one form the big-endian bytes
    /// order as the numbers do, so (first byte, number) orders as the bytes.
    /// </summary>
    internal static int CompareAsMessagePack(long a, long b)
    {
        int c = FirstByte(a).CompareTo(FirstByte(b));
        return c != 0 ? c : a.CompareTo(b);
    }

    private static int FirstByte(long v) => v switch
    {
        >= 0 and <= 0x7f => (int)v,
        >= 0 and <= byte.MaxValue => 0xcc,
        >= 0 and <= ushort.MaxValue => 0xcd,
        >= 0 and <= uint.MaxValue => 0xce,
        >= 0 => 0xcf,
        >= -32 => (byte)v,
        >= sbyte.MinValue => 0xd0,
        >= short.MinValue => 0xd1,
        >= int.MinValue => 0xd2,
        _ => 0xd3,
    };
}

/// <summary>
/// Keyed state across batches. Keys are spread over shards (one per core) processed in parallel; each
/// output goes back to its input record's index, so the output order is the input order whatever the
/// shard count. Idle keys expire after <c>IdleTimeoutBatches</c> batches without a record.
/// </summary>
internal sealed class UpdateStateExecutor<TKey, TIn, TState, TOut> : OperatorExecutor<TOut>, IStatefulExecutor where TKey : notnull
{
    private readonly OperatorExecutor<TIn> _input;
    private readonly UpdateStateNode<TKey, TIn, TState, TOut> _node;
    private readonly KeyedStateStore<TKey, TState> _store;

    public UpdateStateExecutor(UpdateStateNode<TKey, TIn, TState, TOut> node, OperatorExecutor<TIn> input, int parallelism) : base(node)
    {
        _node = node;
        _input = input;
        _store = new KeyedStateStore<TKey, TState>(node.Id, parallelism, node.KeyFormatter, node.StateFormatter);
        _indices = Enumerable.Range(0, _store.ShardCount).Select(_ => Array.Empty<int>()).ToArray();
        _results = Enumerable.Range(0, _store.ShardCount).Select(_ => Array.Empty<TOut>()).ToArray();
        _has = Enumerable.Range(0, _store.ShardCount).Select(_ => Array.Empty<bool>()).ToArray();
    }

    /// <summary>The layout of <see cref="KeyedStateStore{TKey, TValue}"/>.</summary>
    public int StateFormat => KeyedStateStore<TKey, TState>.Format;

    public long KeyCount => _store.Count;

    public override void Execute(BatchContext batch)
    {
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

    private void ExecuteSequential(List<TIn> input, long batchId)
    {
        var state = new KeyedState<TState>();
        foreach (var record in CollectionsMarshal.AsSpan(input))
        {
            TKey key = KeyCheck.NotNull(_node.KeySelector(record), Node);
            int shard = _store.ShardOf(key);
            TOut result = Process(shard, state, key, record, batchId);
            if (result is not null) Output.Add(result);
        }
    }

    // Scratch arrays reused from batch to batch (per shard where a shard writes them).
    private TKey[] _keys = Array.Empty<TKey>();
    private int[] _shardOf = Array.Empty<int>();
    private int[][] _indices = Array.Empty<int[]>();
    private TOut[][] _results = Array.Empty<TOut[]>();
    private bool[][] _has = Array.Empty<bool[]>();

    private void ExecuteSharded(List<TIn> input, BatchContext batch)
    {
        int n = input.Count;
        if (_keys.Length < n)
        {
            _keys = new TKey[n];
            _shardOf = new int[n];
        }

        var keys = _keys;
        var shardOf = _shardOf;
        Parallel.For(0, batch.Parallelism, batch.ParallelOptions, c =>
        {
            int start = (int)((long)n * c / batch.Parallelism), end = (int)((long)n * (c + 1) / batch.Parallelism);
            var span = CollectionsMarshal.AsSpan(input);
            for (int i = start; i < end; i++)
            {
                keys[i] = KeyCheck.NotNull(_node.KeySelector(span[i]), Node);
                shardOf[i] = _store.ShardOf(keys[i]);
            }
        });

        int shards = _store.ShardCount;
        var counts = new int[shards];
        for (int i = 0; i < n; i++) counts[shardOf[i]]++;
        var fill = new int[shards];
        for (int s = 0; s < shards; s++)
        {
            if (_indices[s].Length < counts[s])
            {
                _indices[s] = new int[counts[s]];
                _results[s] = new TOut[counts[s]];
                _has[s] = new bool[counts[s]];
            }
        }

        var indices = _indices;
        for (int i = 0; i < n; i++) indices[shardOf[i]][fill[shardOf[i]]++] = i;

        // Each shard writes only its own dense arrays: no two cores write the same cache lines.
        var results = _results;
        var has = _has;
        long batchId = batch.BatchId;
        Parallel.For(0, shards, batch.ParallelOptions, s =>
        {
            var span = CollectionsMarshal.AsSpan(input);
            var mine = indices[s];
            var out_ = results[s];
            var ok = has[s];
            // The state handle lives on this core's heap: a shared one written for every record would put both
            // cores on the same cache lines (false sharing).
            var state = new KeyedState<TState>();
            for (int j = 0; j < counts[s]; j++)
            {
                int i = mine[j];
                TOut result = Process(s, state, keys[i], span[i], batchId);
                out_[j] = result;
                ok[j] = result is not null;
            }
        });

        // Back into input order: the k-th record of shard s in input order is its k-th result.
        Array.Clear(fill);
        Output.EnsureCapacity(Output.Count + n);
        for (int i = 0; i < n; i++)
        {
            int s = shardOf[i];
            int j = fill[s]++;
            if (has[s][j]) Output.Add(results[s][j]);
        }

        Array.Clear(keys, 0, n);
        for (int s = 0; s < shards; s++) Array.Clear(results[s], 0, counts[s]);
    }

    private TOut Process(int shard, KeyedState<TState> state, TKey key, TIn record, long batchId)
    {
        ref var entry = ref _store.GetOrAdd(shard, key, out bool existed);
        state.Reset(existed, entry.Value);
        TOut result = _node.Function(key, record, state);
        if (state.Exists)
        {
            // A key whose state the function left alone stays out of the delta, unless idle expiry needs the
            // batch it was last seen in (a deduplication or distinct stage sees most keys without a change).
            if (existed && !state.IsChanged && _node.IdleTimeoutBatches == 0) return result;
            entry.Value = state.Value;
            _store.Written(shard, key, ref entry, existed, batchId);
        }
        else
        {
            _store.Remove(shard, key, existed);
        }

        return result;
    }

    private void ExpireIdle(long batchId)
    {
        var expired = new List<(TKey Key, TState Value)>();
        _store.Expire(batchId, _node.IdleTimeoutBatches, expired);
        if (expired.Count == 0 || _node.OnTimeout is null) return;
        foreach (var (key, value) in KeyOrder.Sorted(expired, _node.KeyFormatter))
        {
            TOut result = _node.OnTimeout(key, value);
            if (result is not null) Output.Add(result);
        }
    }

    public void WriteSnapshot(MessagePackWriter writer) => _store.WriteSnapshot(writer);

    public void Clear() => _store.Clear();

    public void WriteDelta(MessagePackWriter writer, long batchId) => _store.WriteDelta(writer, batchId);

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion) => _store.ApplyDelta(ref reader, Decoder(storedVersion));

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion) => _store.RestoreSnapshot(ref reader, Decoder(storedVersion));

    /// <summary>The migration that decodes state of <paramref name="storedVersion"/>; null for this version's own.</summary>
    private StateDecoder<TState>? Decoder(long storedVersion)
    {
        if (storedVersion == _node.Version) return null;
        return _node.Migrations.TryGetValue((int)storedVersion, out var migrate)
            ? migrate
            : throw new InvalidOperationException($"Operator '{Node.Id}' has no migration from version {storedVersion}.");
    }
}

/// <summary>
/// Windowed aggregation over batches: each batch's records are reduced per key into a pane; every
/// <c>SlideBatches</c> batches, each key's panes in the last <c>LengthBatches</c> batches are reduced and
/// emitted (keys in serialized-byte order). Panes that no future window can include are dropped.
/// </summary>
internal sealed class WindowExecutor<TKey, T> : OperatorExecutor<Windowed<TKey, T>>, IStatefulExecutor where TKey : notnull
{
    private readonly OperatorExecutor<T> _input;
    private readonly WindowNode<TKey, T> _node;
    private readonly Dictionary<TKey, List<(long Batch, T Value)>> _panes = new();
    private readonly Dictionary<TKey, T> _current = new();

    public WindowExecutor(WindowNode<TKey, T> node, OperatorExecutor<T> input) : base(node)
    {
        _node = node;
        _input = input;
    }

    /// <summary>Format 1: an array of <c>[key, [[batch, value], ...]]</c>; a delta is the whole state.</summary>
    public int StateFormat => 1;

    public long KeyCount => _panes.Count;

    public override void Execute(BatchContext batch)
    {
        _current.Clear();
        var keyOrder = new List<TKey>();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            TKey key = KeyCheck.NotNull(_node.KeySelector(record), Node);
            ref T? slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_current, key, out bool exists);
            if (exists)
            {
                slot = _node.Function(slot!, record);
            }
            else
            {
                slot = record;
                keyOrder.Add(key);
            }
        }

        long b = batch.BatchId;
        foreach (var key in keyOrder)
        {
            ref var panes = ref CollectionsMarshal.GetValueRefOrAddDefault(_panes, key, out _);
            (panes ??= new List<(long, T)>(_node.LengthBatches)).Add((b, _current[key]));
        }

        if ((b + 1) % _node.SlideBatches == 0)
        {
            long start = b - _node.LengthBatches + 1;
            var results = new List<(TKey Key, T Value)>();
            foreach (var (key, panes) in _panes)
            {
                bool any = false;
                T aggregate = default!;
                foreach (var (paneBatch, value) in panes)
                {
                    if (paneBatch < start) continue;
                    aggregate = any ? _node.Function(aggregate, value) : value;
                    any = true;
                }

                if (any) results.Add((key, aggregate));
            }

            foreach (var (key, value) in KeyOrder.Sorted(results, _node.KeyFormatter))
                Output.Add(new Windowed<TKey, T>(key, value, Math.Max(0, start), b));
        }

        // A future window ends at b + 1 or later, so it starts after b - length + 1.
        long oldestUseful = b - _node.LengthBatches + 2;
        List<TKey>? empty = null;
        foreach (var (key, panes) in _panes)
        {
            panes.RemoveAll(p => p.Batch < oldestUseful);
            if (panes.Count == 0) (empty ??= new List<TKey>()).Add(key);
        }

        if (empty is not null) foreach (var key in empty) _panes.Remove(key);
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_panes.Count);
        foreach (var (key, panes) in _panes)
        {
            writer.WriteArrayHeader(2);
            _node.KeyFormatter.Serialize(writer, key);
            writer.WriteArrayHeader(panes.Count);
            foreach (var (paneBatch, value) in panes)
            {
                writer.WriteArrayHeader(2);
                writer.Write(paneBatch);
                _node.ValueFormatter.Serialize(writer, value);
            }
        }
    }

    public void Clear() => _panes.Clear();

    /// <summary>Windows are small and every pane shifts each batch: the delta is the whole window state.</summary>
    public void WriteDelta(MessagePackWriter writer, long batchId) => WriteSnapshot(writer);

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion) => RestoreSnapshot(ref reader, storedVersion);

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        if (storedVersion != _node.Version) throw new InvalidOperationException($"Window '{Node.Id}' cannot migrate state from version {storedVersion}.");
        _panes.Clear();
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A window entry of operator '{Node.Id}' is not a [key, panes] pair.");
            TKey key = _node.KeyFormatter.Deserialize(ref reader);
            int paneCount = reader.ReadArrayHeader();
            var panes = new List<(long, T)>(paneCount);
            for (int p = 0; p < paneCount; p++)
            {
                if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A pane of operator '{Node.Id}' is not a [batch, value] pair.");
                panes.Add((reader.ReadInt64(), _node.ValueFormatter.Deserialize(ref reader)));
            }

            if (key is null || !_panes.TryAdd(key, panes)) throw new MessagePackException($"The snapshot of operator '{Node.Id}' holds a null or repeated key.");
        }
    }
}
