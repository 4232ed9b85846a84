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

internal sealed class FilterExecutor<T> : StatelessExecutor<T, T>
{
    private readonly Func<T, bool> _predicate;
    private readonly ChunkOutputs<T> _parts = new();

    public FilterExecutor(FilterNode<T> node, OperatorExecutor<T> input) : base(node, input) => _predicate = node.Predicate;

    protected override void ExecuteAlone(BatchContext batch)
    {
        if (batch.Parallelism <= 1 || Input.Output.Count < Chunks.ParallelThreshold)
        {
            var source = CollectionsMarshal.AsSpan(Input.Output);
            var target = BeginAppend(source.Length);
            int kept = 0;
            foreach (var record in source)
            {
                if (_predicate(record)) target[kept++] = record;
            }

            EndAppend(source.Length, kept);
            return;
        }

        Chunks.Transform(Input.Output, Output, batch, _parts, (record, output) =>
        {
            if (_predicate(record)) output.Add(record);
        });
    }

    protected override RecordSink<T> Stage(RecordSink<T> next) => new FilterStage(this, next);

    private sealed class FilterStage : RecordSink<T>
    {
        private readonly Func<T, bool> _predicate;
        private readonly OperatorNode _node;
        private readonly RecordSink<T> _next;

        public FilterStage(FilterExecutor<T> owner, RecordSink<T> next)
        {
            _predicate = owner._predicate;
            _node = owner.Node;
            _next = next;
        }

        public override void Push(T record)
        {
            bool keep;
            try
            {
                keep = _predicate(record);
            }
            catch (Exception e)
            {
                throw new StageFailedException(_node, e);
            }

            if (keep) _next.Push(record);
        }
    }
}
