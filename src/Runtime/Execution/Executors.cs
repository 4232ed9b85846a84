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

/// <summary>What an executor needs to know about the batch it runs.</summary>
internal sealed class BatchContext
{
    public BatchContext(long batchId, int parallelism, IReadOnlySet<string>? finishedSources = null)
    {
        BatchId = batchId;
        Parallelism = parallelism;
        FinishedSources = finishedSources ?? new HashSet<string>();
    }

    public long BatchId { get; }

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

    public static void Transform<TIn, TOut>(List<TIn> input, List<TOut> output, BatchContext batch, Action<TIn, List<TOut>> body)
    {
        int n = input.Count;
        if (batch.Parallelism <= 1 || n < ParallelThreshold)
        {
            foreach (var record in CollectionsMarshal.AsSpan(input)) body(record, output);
            return;
        }

        int chunks = batch.Parallelism * 4;
        var parts = new List<TOut>[chunks];
        Parallel.For(0, chunks, batch.ParallelOptions, c =>
        {
            int start = (int)((long)n * c / chunks), end = (int)((long)n * (c + 1) / chunks);
            var part = new List<TOut>(end - start);
            var span = CollectionsMarshal.AsSpan(input);
            for (int i = start; i < end; i++) body(span[i], part);
            parts[c] = part;
        });
        foreach (var part in parts) output.AddRange(part);
    }
}

/// <summary>The driver's untyped view of a source executor: planning calls and reading a batch's ranges.</summary>
internal interface ISourceExecutor
{
    OperatorNode Node { get; }

    Task<IReadOnlyList<string>> ListAsync(CancellationToken ct);

    Task<long> InitialAsync(string partition, bool partitionIsNew, CancellationToken ct);

    Task<long> EndAsync(string partition, CancellationToken ct);

    Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken ct);

    /// <summary>Reads every range (partitions in parallel) into the output, in partition order; returns the record count.</summary>
    Task<long> ReadAsync(IReadOnlyDictionary<string, Checkpointing.PartitionRange> ranges, BadRecordPolicy policy, List<string> deadLetters, CancellationToken ct);
}

internal sealed class SourceExecutor<T> : OperatorExecutor<T>, ISourceExecutor
{
    private readonly ISourceConnector<T> _connector;

    public SourceExecutor(OperatorNode node, ISourceConnector<T> connector) : base(node) => _connector = connector;

    /// <summary>Filled by <see cref="ReadAsync"/> before the batch's operators run.</summary>
    public override void Execute(BatchContext batch)
    {
    }

    public Task<IReadOnlyList<string>> ListAsync(CancellationToken ct) => _connector.ListPartitionsAsync(ct);

    public Task<long> InitialAsync(string partition, bool partitionIsNew, CancellationToken ct) => _connector.GetInitialPositionAsync(partition, partitionIsNew, ct);

    public Task<long> EndAsync(string partition, CancellationToken ct) => _connector.GetEndPositionAsync(partition, ct);

    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken ct) =>
        _connector.AdvanceAsync(partition, from, available, maxRecords, ct);

    // One collector per partition, reused from batch to batch so that reading allocates no new lists.
    private readonly Dictionary<string, Collector> _collectors = new(StringComparer.Ordinal);

    public async Task<long> ReadAsync(IReadOnlyDictionary<string, Checkpointing.PartitionRange> ranges, BadRecordPolicy policy, List<string> deadLetters, CancellationToken ct)
    {
        var work = ranges.Where(r => r.Value.Count > 0).ToList();
        var parts = new Collector[work.Count];
        for (int i = 0; i < work.Count; i++)
        {
            if (!_collectors.TryGetValue(work[i].Key, out var collector)) _collectors[work[i].Key] = collector = new Collector(Node.Id, work[i].Key);
            collector.Reset(policy, (int)Math.Min(work[i].Value.Count, 1 << 20));
            parts[i] = collector;
        }

        if (parts.Length == 1)
        {
            await _connector.ReadAsync(work[0].Key, work[0].Value.From, work[0].Value.To, parts[0], ct).ConfigureAwait(false);
        }
        else
        {
            await Task.WhenAll(work.Select((range, i) => Task.Run(
                () => _connector.ReadAsync(range.Key, range.Value.From, range.Value.To, parts[i], ct), ct))).ConfigureAwait(false);
        }

        long count = 0;
        Output.EnsureCapacity(parts.Sum(p => p.Records.Count));
        foreach (var part in parts)
        {
            Output.AddRange(part.Records);
            deadLetters.AddRange(part.DeadLetters);
            count += part.Records.Count + part.DeadLetters.Count;
            part.Records.Clear();
        }

        return count;
    }

    private sealed class Collector : ISourceOutput<T>
    {
        private readonly string _source;
        private readonly string _partition;
        private BadRecordPolicy _policy;

        public Collector(string source, string partition)
        {
            _source = source;
            _partition = partition;
        }

        public List<T> Records { get; } = new();

        public List<string> DeadLetters { get; } = new();

        public void Reset(BadRecordPolicy policy, int expected)
        {
            _policy = policy;
            Records.Clear();
            Records.EnsureCapacity(expected);
            DeadLetters.Clear();
        }

        public void Emit(long position, T record) => Records.Add(record);

        public void Reject(long position, string raw, Exception error)
        {
            if (_policy == BadRecordPolicy.Fail) throw new BadRecordException(_source, _partition, position, raw, error);
            var buffer = new System.IO.MemoryStream();
            using (var json = new System.Text.Json.Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("source", _source);
                json.WriteString("partition", _partition);
                json.WriteNumber("position", position);
                json.WriteString("error", error.Message);
                json.WriteString("record", raw);
                json.WriteEndObject();
            }

            DeadLetters.Add(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        }
    }
}

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
            Output.EnsureCapacity(n);
            foreach (var record in CollectionsMarshal.AsSpan(input)) Output.Add(_map(record));
            return;
        }

        var results = new TOut[n];
        Parallel.For(0, batch.Parallelism * 4, batch.ParallelOptions, c =>
        {
            int chunks = batch.Parallelism * 4;
            int start = (int)((long)n * c / chunks), end = (int)((long)n * (c + 1) / chunks);
            var span = CollectionsMarshal.AsSpan(input);
            for (int i = start; i < end; i++) results[i] = _map(span[i]);
        });
        Output.AddRange(results);
    }
}

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
            foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
            {
                if (_predicate(record)) Output.Add(record);
            }

            return;
        }

        Chunks.Transform(_input.Output, Output, batch, (record, output) =>
        {
            if (_predicate(record)) output.Add(record);
        });
    }
}

internal sealed class UnionExecutor<T> : OperatorExecutor<T>
{
    private readonly OperatorExecutor<T>[] _inputs;

    public UnionExecutor(UnionNode<T> node, OperatorExecutor<T>[] inputs) : base(node) => _inputs = inputs;

    public override void Execute(BatchContext batch)
    {
        foreach (var input in _inputs) Output.AddRange(input.Output);
    }
}

/// <summary>Per-batch reduce by key; one output per key, in the order keys first appear in the batch.</summary>
internal sealed class ReduceExecutor<TKey, T> : OperatorExecutor<T> where TKey : notnull
{
    private readonly OperatorExecutor<T> _input;
    private readonly Func<T, TKey> _key;
    private readonly Func<T, T, T> _reduce;
    private readonly Dictionary<TKey, int> _slots = new();

    public ReduceExecutor(ReduceNode<TKey, T> node, OperatorExecutor<T> input) : base(node)
    {
        _input = input;
        _key = node.KeySelector;
        _reduce = node.Function;
    }

    public override void Execute(BatchContext batch)
    {
        _slots.Clear();
        foreach (var record in CollectionsMarshal.AsSpan(_input.Output))
        {
            TKey key = KeyCheck.NotNull(_key(record), Node);
            ref int slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_slots, key, out bool exists);
            if (exists)
            {
                Output[slot] = _reduce(Output[slot], record);
            }
            else
            {
                slot = Output.Count;
                Output.Add(record);
            }
        }
    }
}

/// <summary>Inner join within the batch: for each left record in order, each matching right record in order.</summary>
internal sealed class JoinExecutor<TKey, TLeft, TRight, TOut> : OperatorExecutor<TOut> where TKey : notnull
{
    private readonly OperatorExecutor<TLeft> _left;
    private readonly OperatorExecutor<TRight> _right;
    private readonly JoinNode<TKey, TLeft, TRight, TOut> _node;
    private readonly Dictionary<TKey, List<TRight>> _table = new();

    public JoinExecutor(JoinNode<TKey, TLeft, TRight, TOut> node, OperatorExecutor<TLeft> left, OperatorExecutor<TRight> right) : base(node)
    {
        _node = node;
        _left = left;
        _right = right;
    }

    public override void Execute(BatchContext batch)
    {
        _table.Clear();
        foreach (var r in CollectionsMarshal.AsSpan(_right.Output))
        {
            TKey key = KeyCheck.NotNull(_node.RightKeySelector(r), Node);
            ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(_table, key, out _);
            (list ??= new List<TRight>(1)).Add(r);
        }

        if (_table.Count == 0) return;
        foreach (var l in CollectionsMarshal.AsSpan(_left.Output))
        {
            if (_table.TryGetValue(KeyCheck.NotNull(_node.LeftKeySelector(l), Node), out var matches))
            {
                foreach (var r in matches) Output.Add(_node.Function(l, r));
            }
        }
    }
}

internal static class KeyCheck
{
    public static TKey NotNull<TKey>(TKey key, OperatorNode node) =>
        key is null
            ? throw new InvalidOperationException($"Operator '{node.Id}' got a record whose key is null. Keys must not be null: filter such records out or map them to a key first.")
            : key;
}

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
