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

/// <summary>Inner join within the batch: for each left record in order, each matching right record in order.</summary>
internal sealed class JoinExecutor<TKey, TLeft, TRight, TOut> : OperatorExecutor<TOut> where TKey : notnull
{
    private readonly OperatorExecutor<TLeft> _left;
    private readonly OperatorExecutor<TRight> _right;
    private readonly JoinNode<TKey, TLeft, TRight, TOut> _node;
    private readonly Dictionary<TKey, List<TRight>> _table = new();

    public JoinExecutor(JoinNode<TKey, TLeft, TRight, TOut> node, OperatorExecutor<TLeft> left, OperatorExecutor<TRight> right) : base(node)
    {
        _node = node;
        _left = left;
        _right = right;
    }

    public override void Execute(BatchContext batch)
    {
        _table.Clear();
        foreach (var r in CollectionsMarshal.AsSpan(_right.Output))
        {
            TKey key = KeyCheck.NotNull(_node.RightKeySelector(r), Node);
            ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(_table, key, out _);
            (list ??= new List<TRight>(1)).Add(r);
        }

        if (_table.Count == 0) return;
        foreach (var l in CollectionsMarshal.AsSpan(_left.Output))
        {
            if (_table.TryGetValue(KeyCheck.NotNull(_node.LeftKeySelector(l), Node), out var matches))
            {
                foreach (var r in matches) Output.Add(_node.Function(l, r));
            }
        }
    }
}
