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

internal sealed class FlatMapExecutor<TIn, TOut> : OperatorExecutor<TOut>
{
    private readonly OperatorExecutor<TIn> _input;
    private readonly Func<TIn, IEnumerable<TOut>> _flatMap;

    public FlatMapExecutor(FlatMapNode<TIn, TOut> node, OperatorExecutor<TIn> input) : base(node)
    {
        _input = input;
        _flatMap = node.Function;
    }

    public override void Execute(BatchContext batch) =>
        Chunks.Transform(_input.Output, Output, batch, (record, output) =>
        {
            var produced = _flatMap(record);
            if (produced is not null) output.AddRange(produced);
        });
}
