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

internal sealed class FlatMapExecutor<TIn, TOut> : StatelessExecutor<TIn, TOut>
{
    private readonly Func<TIn, IEnumerable<TOut>> _flatMap;
    private readonly ChunkOutputs<TOut> _parts = new();

    public FlatMapExecutor(FlatMapNode<TIn, TOut> node, OperatorExecutor<TIn> input) : base(node, input) => _flatMap = node.Function;

    protected override void ExecuteAlone(BatchContext batch) =>
        Chunks.Transform(Input.Output, Output, batch, _parts, (record, output) =>
        {
            var produced = _flatMap(record);
            if (produced is not null) output.AddRange(produced);
        });

    protected override RecordSink<TIn> Stage(RecordSink<TOut> next) => new FlatMapStage(this, next);

    private sealed class FlatMapStage : RecordSink<TIn>
    {
        private readonly Func<TIn, IEnumerable<TOut>> _flatMap;
        private readonly OperatorNode _node;
        private readonly RecordSink<TOut> _next;

        public FlatMapStage(FlatMapExecutor<TIn, TOut> owner, RecordSink<TOut> next)
        {
            _flatMap = owner._flatMap;
            _node = owner.Node;
            _next = next;
        }

        public override void Push(TIn record)
        {
            IEnumerable<TOut>? produced;
            try
            {
                produced = _flatMap(record);
                if (produced is null) return;
                // The user's enumerator runs user code too (an iterator method): its failures are this operator's.
                if (produced is TOut[] array)
                {
                    foreach (var item in array) _next.Push(item);
                    return;
                }

                if (produced is List<TOut> list)
                {
                    foreach (var item in CollectionsMarshal.AsSpan(list)) _next.Push(item);
                    return;
                }
            }
            catch (Exception e) when (e is not StageFailedException)
            {
                throw new StageFailedException(_node, e);
            }

            using var items = produced.GetEnumerator();
            while (true)
            {
                TOut item;
                try
                {
                    if (!items.MoveNext()) return;
                    item = items.Current;
                }
                catch (Exception e)
                {
                    throw new StageFailedException(_node, e);
                }

                _next.Push(item);
            }
        }
    }
}
