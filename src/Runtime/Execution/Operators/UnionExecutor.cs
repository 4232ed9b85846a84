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

internal sealed class UnionExecutor<T> : OperatorExecutor<T>
{
    private readonly OperatorExecutor<T>[] _inputs;

    public UnionExecutor(UnionNode<T> node, OperatorExecutor<T>[] inputs) : base(node) => _inputs = inputs;

    public override void Execute(BatchContext batch)
    {
        foreach (var input in _inputs) Output.AddRange(input.Output);
    }
}
