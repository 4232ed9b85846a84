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
using PipelineDsl.State;

namespace PipelineDsl.Execution;

/// <summary>What an executor needs to know about the batch it runs.</summary>
internal sealed class BatchContext
{
    public BatchContext(long batchId, int parallelism, IReadOnlySet<string>? finishedSources = null, long plannedAtMs = 0)
    {
        BatchId = batchId;
        Parallelism = parallelism;
        FinishedSources = finishedSources ?? new HashSet<string>();
        PlannedAtMs = plannedAtMs;
    }

    public long BatchId { get; }

    /// <summary>When the batch was planned (its offsets record's time, so the same on a replay): its processing time.</summary>
    public long PlannedAtMs { get; }

    /// <summary>Bounded sources read to their end by this batch: their input is complete.</summary>
    public IReadOnlySet<string> FinishedSources { get; }

    private long _lateRecords;

    /// <summary>Records event-time operators dropped in this batch because the watermark had passed them.</summary>
    public long LateRecords => Interlocked.Read(ref _lateRecords);

    public void AddLate(long count)
    {
        if (count > 0) Interlocked.Add(ref _lateRecords, count);
    }

    public int Parallelism { get; }

    public ParallelOptions ParallelOptions => new() { MaxDegreeOfParallelism = Parallelism };
}

/// <summary>Runs one operator for one batch. Executors run in topological order; each reads its inputs' outputs.</summary>
internal abstract class OperatorExecutor
{
    protected OperatorExecutor(OperatorNode node) => Node = node;

    public OperatorNode Node { get; }

    public abstract int OutputCount { get; }

    public abstract void Execute(BatchContext batch);

    public abstract void ClearOutput();
}

internal abstract class OperatorExecutor<T> : OperatorExecutor
{
    protected OperatorExecutor(OperatorNode node) : base(node) { }

    /// <summary>This batch's output, in a deterministic order. Cleared (capacity kept) before each batch.</summary>
    public List<T> Output { get; } = new();

    public override int OutputCount => Output.Count;

    public override void ClearOutput() => Output.Clear();

    /// <summary>
    /// Room for up to <paramref name="count"/> more records at the end of <see cref="Output"/>, written through the
    /// span: a store into a span skips the covariance check that <c>List&lt;T&gt;.Add</c> costs per reference in
    /// shared generic code. Call <see cref="EndAppend"/> with the number written.
    /// </summary>
    protected Span<T> BeginAppend(int count)
    {
        int start = Output.Count;
        CollectionsMarshal.SetCount(Output, start + count);
        return CollectionsMarshal.AsSpan(Output).Slice(start, count);
    }

    /// <summary>Keeps the first <paramref name="written"/> of the records <see cref="BeginAppend"/> made room for <paramref name="reserved"/>.</summary>
    protected void EndAppend(int reserved, int written) => CollectionsMarshal.SetCount(Output, Output.Count - reserved + written);
}

/// <summary>Builds executors: resolves each node's inputs to their executors and its connector bindings.</summary>
internal sealed class ExecutorFactory
{
    private readonly Dictionary<OperatorNode, OperatorExecutor> _built = new();
    private readonly IReadOnlyDictionary<string, object> _sources;
    private readonly IReadOnlyDictionary<string, object> _sinks;

    public ExecutorFactory(IReadOnlyDictionary<string, object> sources, IReadOnlyDictionary<string, object> sinks, int parallelism)
    {
        _sources = sources;
        _sinks = sinks;
        Parallelism = parallelism;
    }

    public int Parallelism { get; }

    /// <summary>Where keyed state lives (null: in memory).</summary>
    public StateBackend? StateBackend { get; init; }

    /// <summary>The pipeline's id, for state backends that name local directories after it.</summary>
    public string PipelineId { get; init; } = "";

    public OperatorExecutor<T> Input<T>(OperatorNode<T> node) => (OperatorExecutor<T>)_built[node];

    public ISourceConnector<T> Source<T>(string id) => (ISourceConnector<T>)_sources[id];

    public ISinkConnector<T> Sink<T>(string id) => (ISinkConnector<T>)_sinks[id];

    /// <summary>The ids of the sources <paramref name="node"/> reads from, directly or through other operators.</summary>
    public IReadOnlyList<string> SourcesUpstreamOf(OperatorNode node)
    {
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var stack = new Stack<OperatorNode>(node.Inputs);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            if (n.Kind == OperatorKind.Source) found.Add(n.Id);
            foreach (var i in n.Inputs) stack.Push(i);
        }

        return found.ToArray();
    }

    /// <summary>
    /// The watermark of an event-time operator: the smallest of the watermark stages on its input paths.
    /// Every path from a source must pass one, or event time is undefined on it.
    /// </summary>
    public IWatermark WatermarkOf(OperatorNode node)
    {
        var found = new List<IWatermark>();
        foreach (var input in node.Inputs) Collect(input, new List<string> { node.Id });
        return found.Count == 1 ? found[0] : new MinimumWatermark(found.Distinct().ToArray());

        void Collect(OperatorNode n, List<string> path)
        {
            if (n.Kind == OperatorKind.Watermark)
            {
                found.Add((IWatermark)_built[n]);
                return;
            }

            if (n.Kind == OperatorKind.Source)
                throw new PipelineDefinitionException(
                    $"Operator '{node.Id}' works in event time, but its input from source '{n.Id}' passes no watermark stage. "
                    + $"Declare [Watermark(\"...\", From = \"{n.Id}\", Time = ...)] between the source and '{path[^1]}'.");
            foreach (var i in n.Inputs) Collect(i, new List<string>(path) { n.Id });
        }
    }

    public OperatorExecutor Build(OperatorNode node)
    {
        var executor = node.CreateExecutor(this);
        _built.Add(node, executor);
        return executor;
    }
}

/// <summary>Splits work into chunks run on several cores, keeping the input order in the output.</summary>
internal static class Chunks
{
    public const int ParallelThreshold = 8192;

    public static void Transform<TIn, TOut>(List<TIn> input, List<TOut> output, BatchContext batch, ChunkOutputs<TOut> parts, Action<TIn, List<TOut>> body)
    {
        int n = input.Count;
        if (batch.Parallelism <= 1 || n < ParallelThreshold)
        {
            foreach (var record in CollectionsMarshal.AsSpan(input)) body(record, output);
            return;
        }

        int chunks = batch.Parallelism * 4;
        var lists = parts.Take(chunks);
        Parallel.For(0, chunks, batch.ParallelOptions, c =>
        {
            int start = (int)((long)n * c / chunks), end = (int)((long)n * (c + 1) / chunks);
            var part = lists[c];
            var span = CollectionsMarshal.AsSpan(input);
            for (int i = start; i < end; i++) body(span[i], part);
        });
        parts.MoveTo(output, chunks);
    }
}

/// <summary>
/// The per-chunk output lists of an operator that runs in parallel chunks, kept from batch to batch. A new list per
/// chunk and batch is an array on the large-object heap once a chunk holds more than about 10,000 references, and that
/// churn set off full (gen 2) collections: at parallelism 2 map+filter spent more than 40 % of its time in the GC.
/// </summary>
internal sealed class ChunkOutputs<T>
{
    private List<T>[] _lists = Array.Empty<List<T>>();

    /// <summary>Empty lists for <paramref name="chunks"/> chunks.</summary>
    public List<T>[] Take(int chunks)
    {
        if (_lists.Length < chunks)
        {
            int had = _lists.Length;
            Array.Resize(ref _lists, chunks);
            for (int i = had; i < chunks; i++) _lists[i] = new List<T>();
        }

        return _lists;
    }

    /// <summary>Appends the chunks' records to <paramref name="output"/> in chunk order and empties the lists (so that they hold no records alive).</summary>
    public void MoveTo(List<T> output, int chunks)
    {
        int total = output.Count;
        for (int i = 0; i < chunks; i++) total += _lists[i].Count;
        output.EnsureCapacity(total);
        for (int i = 0; i < chunks; i++)
        {
            output.AddRange(_lists[i]);
            _lists[i].Clear();
        }
    }
}

internal static class KeyCheck
{
    /// <summary>The error for a record whose key is null; thrown by the caller, so that the check itself stays inlined.</summary>
    public static InvalidOperationException NullKey(OperatorNode node) =>
        new($"Operator '{node.Id}' got a record whose key is null. Keys must not be null: filter such records out or map them to a key first.");

    public static TKey NotNull<TKey>(TKey key, OperatorNode node) =>
        key is null
            ? throw new InvalidOperationException($"Operator '{node.Id}' got a record whose key is null. Keys must not be null: filter such records out or map them to a key first.")
            : key;
}
