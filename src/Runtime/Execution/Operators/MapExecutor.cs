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

internal sealed class MapExecutor<TIn, TOut> : OperatorExecutor<TOut>
{
    private readonly OperatorExecutor<TIn> _input;
    private readonly Func<TIn, TOut> _map;

    public MapExecutor(MapNode<TIn, TOut> node, OperatorExecutor<TIn> input) : base(node)
    {
        _input = input;
        _map = node.Function;
    }

    public override void Execute(BatchContext batch)
    {
        var input = _input.Output;
        int n = input.Count;
        if (batch.Parallelism <= 1 || n < Chunks.ParallelThreshold)
        {
            var source = CollectionsMarshal.AsSpan(input);
            var target = BeginAppend(n);
            for (int i = 0; i < source.Length; i++) target[i] = _map(source[i]);
            return;
        }

        // Chunks of consecutive records, each written by one core straight into the output.
        BeginAppend(n);
        int offset = Output.Count - n;
        Parallel.For(0, batch.Parallelism * 4, batch.ParallelOptions, c =>
        {
            int chunks = batch.Parallelism * 4;
            int start = (int)((long)n * c / chunks), end = (int)((long)n * (c + 1) / chunks);
            var source = CollectionsMarshal.AsSpan(input);
            var target = CollectionsMarshal.AsSpan(Output).Slice(offset, n);
            for (int i = start; i < end; i++) target[i] = _map(source[i]);
        });
    }
}
