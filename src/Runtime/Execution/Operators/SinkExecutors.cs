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

/// <summary>A sink bound to a connector.</summary>
internal abstract class SinkExecutorBase : OperatorExecutor
{
    protected SinkExecutorBase(OperatorNode node) : base(node) { }

    public override int OutputCount => 0;

    public abstract int InputCount { get; }

    public override void Execute(BatchContext batch)
    {
    }

    public override void ClearOutput()
    {
    }

    public abstract Task DeliverAsync(long batchId, CancellationToken cancellationToken);
}

internal sealed class SinkExecutor<T> : SinkExecutorBase
{
    private readonly OperatorExecutor<T> _input;
    private readonly ISinkConnector<T> _connector;

    public SinkExecutor(SinkNode<T> node, OperatorExecutor<T> input, ISinkConnector<T> connector) : base(node)
    {
        _input = input;
        _connector = connector;
    }

    public override int InputCount => _input.Output.Count;

    public override Task DeliverAsync(long batchId, CancellationToken cancellationToken) =>
        _connector.WriteBatchAsync(batchId, _input.Output, cancellationToken);
}

internal sealed class ForEachBatchExecutor<T> : SinkExecutorBase
{
    private readonly OperatorExecutor<T> _input;
    private readonly Func<long, IReadOnlyList<T>, Task> _write;

    public ForEachBatchExecutor(ForEachBatchNode<T> node, OperatorExecutor<T> input) : base(node)
    {
        _input = input;
        _write = node.Function;
    }

    public override int InputCount => _input.Output.Count;

    public override Task DeliverAsync(long batchId, CancellationToken cancellationToken) => _write(batchId, _input.Output);
}
