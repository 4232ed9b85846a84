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

internal sealed class MapExecutor<TIn, TOut> : StatelessExecutor<TIn, TOut>
{
    private readonly Func<TIn, TOut> _map;

    public MapExecutor(MapNode<TIn, TOut> node, OperatorExecutor<TIn> input) : base(node, input)
    {
        // A map that takes the batch time reads this executor's current batch time (set before each batch's records
        // flow, also when the map is fused into a chain), never a value shared with another run of the same definition.
        var timed = node.TimedFunction;
        _map = timed is null ? node.Function : record => timed(record, CurrentBatchTime);
    }

    protected override void ExecuteAlone(BatchContext batch)
    {
        var input = Input.Output;
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

    protected override RecordSink<TIn> Stage(RecordSink<TOut> next) => new MapStage(this, next);

    private sealed class MapStage : RecordSink<TIn>
    {
        private readonly Func<TIn, TOut> _map;
        private readonly OperatorNode _node;
        private readonly RecordSink<TOut> _next;

        public MapStage(MapExecutor<TIn, TOut> owner, RecordSink<TOut> next)
        {
            _map = owner._map;
            _node = owner.Node;
            _next = next;
        }

        public override void Push(TIn record)
        {
            TOut mapped;
            try
            {
                mapped = _map(record);
            }
            catch (Exception e)
            {
                throw new StageFailedException(_node, e);
            }

            _next.Push(mapped);
        }
    }
}
