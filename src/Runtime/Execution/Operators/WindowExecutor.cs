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

/// <summary>Reads the batch window's layout (format 1) for <c>dump-state</c>: one line per key with its panes.</summary>
internal static class BatchWindowLayout
{
    public static void Dump(ref MessagePackReader r, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines) =>
        KeyedListLayout.Dump(ref r, "panes", new[] { "batch" }, fieldNames, lines);
}
