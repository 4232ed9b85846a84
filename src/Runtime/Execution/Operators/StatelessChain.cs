using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;

namespace PipelineDsl.Execution;

/// <summary>Where a stage of a fused chain hands each record it produces.</summary>
internal abstract class RecordSink<T>
{
    public abstract void Push(T record);
}

/// <summary>The end of a fused chain: appends to a list through its span (no covariance check per reference).</summary>
internal sealed class ListAppender<T> : RecordSink<T>
{
    private readonly List<T> _target;

    public ListAppender(List<T> target) => _target = target;

    public override void Push(T record)
    {
        var target = _target;
        int count = target.Count;
        if (count == target.Capacity) target.EnsureCapacity(count + 1);
        CollectionsMarshal.SetCount(target, count + 1);
        CollectionsMarshal.AsSpan(target)[count] = record;
    }
}

/// <summary>
/// A user function of a fused stage threw. Carries the operator whose function it was, so that the batch's error names
/// that operator and not the chain's last one.
/// </summary>
internal sealed class StageFailedException : Exception
{
    public StageFailedException(OperatorNode node, Exception inner) : base(inner.Message, inner) => Node = node;

    public OperatorNode Node { get; }
}

/// <summary>The fusion pass's untyped view of a stateless one-input operator (map, filter, flat-map).</summary>
internal interface IStatelessStage
{
    OperatorNode Node { get; }

    OperatorExecutor InputExecutor { get; }

    /// <summary>Set on every operator of a chain but its last: its records go straight to the next stage, its output stays empty.</summary>
    bool FusedIntoNext { get; set; }

    /// <summary>This operator's stage in front of <paramref name="next"/> (a <c>RecordSink</c> of this operator's output type).</summary>
    object StageBefore(object next);

    /// <summary>Pushes records [start, end) of this operator's input through <paramref name="firstStage"/>.</summary>
    void Feed(object firstStage, int start, int end);

    int InputCount { get; }

    /// <summary>Makes this operator, the last of <paramref name="chain"/> (head first), run the whole chain.</summary>
    void RunAsChain(IStatelessStage[] chain);
}

/// <summary>
/// A map, filter or flat-map. Alone it runs over its input list and materializes its output. When the operator feeding it
/// is stateless too and feeds nothing else, the two are fused (Flink's operator chaining, Spark's whole-stage pipelining):
/// each record is pushed through every stage of the chain and only the last stage's output is materialized, so the
/// intermediate lists, their stores (each a GC write barrier) and their second pass are gone.
/// </summary>
internal abstract class StatelessExecutor<TIn, TOut> : OperatorExecutor<TOut>, IStatelessStage
{
    private IStatelessStage[]? _chain;
    private readonly ChunkOutputs<TOut> _parts = new();

    protected StatelessExecutor(OperatorNode node, OperatorExecutor<TIn> input) : base(node) => Input = input;

    protected OperatorExecutor<TIn> Input { get; }

    public OperatorExecutor InputExecutor => Input;

    public bool FusedIntoNext { get; set; }

    public int InputCount => Input.Output.Count;

    /// <summary>Runs this operator by itself over its input.</summary>
    protected abstract void ExecuteAlone(BatchContext batch);

    /// <summary>This operator's per-record work, pushing what it produces into <paramref name="next"/>.</summary>
    protected abstract RecordSink<TIn> Stage(RecordSink<TOut> next);

    public object StageBefore(object next) => Stage((RecordSink<TOut>)next);

    public void Feed(object firstStage, int start, int end)
    {
        var stage = (RecordSink<TIn>)firstStage;
        var input = CollectionsMarshal.AsSpan(Input.Output);
        for (int i = start; i < end; i++) stage.Push(input[i]);
    }

    public void RunAsChain(IStatelessStage[] chain) => _chain = chain;

    /// <summary>The processing time of the batch being executed (see <see cref="BatchTime"/>).</summary>
    protected BatchTime CurrentBatchTime { get; private set; }

    public sealed override void Execute(BatchContext batch)
    {
        // Set on every operator of a fused chain too: its stages run later, inside the chain's last operator.
        CurrentBatchTime = new BatchTime(batch.PlannedAtMs);
        if (FusedIntoNext) return;
        if (_chain is null)
        {
            ExecuteAlone(batch);
            return;
        }

        var head = _chain[0];
        int n = head.InputCount;
        if (batch.Parallelism <= 1 || n < Chunks.ParallelThreshold)
        {
            head.Feed(BuildStages(Output), 0, n);
            return;
        }

        // Chunks of consecutive input records, each pushed through its own stages into its own list; concatenated in order.
        int chunks = batch.Parallelism * 4;
        var lists = _parts.Take(chunks);
        Parallel.For(0, chunks, batch.ParallelOptions, c =>
        {
            int start = (int)((long)n * c / chunks), end = (int)((long)n * (c + 1) / chunks);
            head.Feed(BuildStages(lists[c]), start, end);
        });
        _parts.MoveTo(Output, chunks);
    }

    // A handful of small objects per chain and chunk, built per batch: stages keep no state between records.
    private object BuildStages(List<TOut> target)
    {
        object stage = new ListAppender<TOut>(target);
        for (int i = _chain!.Length - 1; i >= 0; i--) stage = _chain[i].StageBefore(stage);
        return stage;
    }
}

/// <summary>Finds chains of stateless operators and fuses them; the one owner of that decision.</summary>
internal static class OperatorFusion
{
    /// <summary>
    /// Fuses every maximal chain in which each operator's input is a stateless operator that feeds nothing else.
    /// <paramref name="executors"/> are in topological order; returns the chains fused (head first), for tests and logs.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<OperatorNode>> Apply(IReadOnlyList<OperatorExecutor> executors)
    {
        var consumers = new Dictionary<OperatorNode, int>();
        foreach (var executor in executors)
        {
            foreach (var input in executor.Node.Inputs) consumers[input] = consumers.GetValueOrDefault(input) + 1;
        }

        // An operator can be fused into the next when that next one is its only consumer.
        bool Fusible(IStatelessStage stage) =>
            stage.InputExecutor is IStatelessStage upstream && consumers.GetValueOrDefault(upstream.Node) == 1;

        var fusedInto = new HashSet<OperatorNode>();
        var chains = new List<IReadOnlyList<OperatorNode>>();
        // Walk from the last operator back so that each chain is found from its tail.
        for (int i = executors.Count - 1; i >= 0; i--)
        {
            if (executors[i] is not IStatelessStage tail || fusedInto.Contains(tail.Node) || !Fusible(tail)) continue;
            var chain = new List<IStatelessStage> { tail };
            while (Fusible(chain[^1])) chain.Add((IStatelessStage)chain[^1].InputExecutor);
            chain.Reverse();
            for (int c = 0; c < chain.Count - 1; c++)
            {
                chain[c].FusedIntoNext = true;
                fusedInto.Add(chain[c].Node);
            }

            tail.RunAsChain(chain.ToArray());
            chains.Add(chain.Select(s => s.Node).ToArray());
        }

        chains.Reverse();
        return chains;
    }
}
