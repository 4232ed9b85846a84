using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Execution;

/// <summary>Per-batch reduce by key; one output per key, in the order keys first appear in the batch.</summary>
internal sealed class ReduceExecutor<TKey, T> : OperatorExecutor<T> where TKey : notnull
{
    private readonly OperatorExecutor<T> _input;
    private readonly Func<T, TKey> _key;
    private readonly Func<T, T, T> _reduce;
    private readonly Dictionary<TKey, int> _slots = new();

    public ReduceExecutor(ReduceNode<TKey, T> node, OperatorExecutor<T> input) : base(node)
    {
        _input = input;
        _key = node.KeySelector;
        _reduce = node.Function;
    }

    public override void Execute(BatchContext batch)
    {
        _slots.Clear();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            TKey key = KeyCheck.NotNull(_key(record), Node);
            ref int slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_slots, key, out bool exists);
            if (exists)
            {
                Output[slot] = _reduce(Output[slot], record);
            }
            else
            {
                slot = Output.Count;
                Output.Add(record);
            }
        }
    }
}
