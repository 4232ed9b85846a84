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

internal sealed class FilterExecutor<T> : OperatorExecutor<T>
{
    private readonly OperatorExecutor<T> _input;
    private readonly Func<T, bool> _predicate;

    public FilterExecutor(FilterNode<T> node, OperatorExecutor<T> input) : base(node)
    {
        _input = input;
        _predicate = node.Predicate;
    }

    public override void Execute(BatchContext batch)
    {
        if (batch.Parallelism <= 1 || _input.Output.Count < Chunks.ParallelThreshold)
        {
            var source = CollectionsMarshal.AsSpan(_input.Output);
            var target = BeginAppend(source.Length);
            int kept = 0;
            foreach (var record in source)
            {
                if (_predicate(record)) target[kept++] = record;
            }

            EndAppend(source.Length, kept);
            return;
        }

        Chunks.Transform(_input.Output, Output, batch, (record, output) =>
        {
            if (_predicate(record)) output.Add(record);
        });
    }
}
