using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using System.Linq;
using PipelineDsl.Execution;
using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;

namespace PipelineDsl.Graph;

/// <summary>The kind of an operator, as recorded in the manifest.</summary>
public enum OperatorKind
{
    /// <summary>A source bound to a connector at run time.</summary>
    Source,
    /// <summary>One record in, one record out.</summary>
    Map,
    /// <summary>One record in, any number out.</summary>
    FlatMap,
    /// <summary>Keeps the records a predicate accepts.</summary>
    Filter,
    /// <summary>Per-batch reduce by key.</summary>
    Reduce,
    /// <summary>Keyed state carried across batches.</summary>
    UpdateState,
    /// <summary>Windowed aggregation by key.</summary>
    Window,
    /// <summary>Merges inputs of one type.</summary>
    Union,
    /// <summary>Inner join of two keyed inputs.</summary>
    Join,
    /// <summary>A sink bound to a connector at run time.</summary>
    Sink,
    /// <summary>A sink implemented by a pipeline method called once per batch.</summary>
    ForEachBatch,
    /// <summary>Declares a stream's event time and tracks its watermark.</summary>
    Watermark,
    /// <summary>Event-time tumbling or hopping windows by key.</summary>
    EventTimeWindow,
    /// <summary>Event-time session windows by key.</summary>
    SessionWindow,
    /// <summary>Inner join of two streams across batches, unbounded or within a time bound.</summary>
    StreamJoin,
}

/// <summary>A source; its connector is bound at run time.</summary>
internal sealed class SourceNode<T> : OperatorNode<T>
{
    internal SourceNode(string id, int version) : base(id, version, OperatorKind.Source, Array.Empty<OperatorNode>()) { }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new SourceExecutor<T>(this, factory.Source<T>(Id));
}

/// <summary>A map stage.</summary>
internal sealed class MapNode<TIn, TOut> : OperatorNode<TOut>
{
    internal MapNode(string id, int version, OperatorNode<TIn> input, Func<TIn, TOut> map)
        : base(id, version, OperatorKind.Map, new OperatorNode[] { input })
    {
        Input = input;
        Function = map;
    }

    internal MapNode(string id, int version, OperatorNode<TIn> input, Func<TIn, BatchTime, TOut> map)
        : base(id, version, OperatorKind.Map, new OperatorNode[] { input })
    {
        Input = input;
        Function = static _ => throw new InvalidOperationException("A map that takes the batch time runs through TimedFunction.");
        TimedFunction = map;
    }

    /// <summary>The user's map method when it takes the batch's processing time; <see cref="Function"/> is then unused.</summary>
    public Func<TIn, BatchTime, TOut>? TimedFunction { get; }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<TIn> Input { get; }

    /// <summary>The user's map method.</summary>
    public Func<TIn, TOut> Function { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new MapExecutor<TIn, TOut>(this, factory.Input(Input));
}

/// <summary>A flat-map stage.</summary>
internal sealed class FlatMapNode<TIn, TOut> : OperatorNode<TOut>
{
    internal FlatMapNode(string id, int version, OperatorNode<TIn> input, Func<TIn, IEnumerable<TOut>> flatMap)
        : base(id, version, OperatorKind.FlatMap, new OperatorNode[] { input })
    {
        Input = input;
        Function = flatMap;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<TIn> Input { get; }

    /// <summary>The user's flat-map method.</summary>
    public Func<TIn, IEnumerable<TOut>> Function { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new FlatMapExecutor<TIn, TOut>(this, factory.Input(Input));
}

/// <summary>A filter stage.</summary>
internal sealed class FilterNode<T> : OperatorNode<T>
{
    internal FilterNode(string id, int version, OperatorNode<T> input, Func<T, bool> predicate)
        : base(id, version, OperatorKind.Filter, new OperatorNode[] { input })
    {
        Input = input;
        Predicate = predicate;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<T> Input { get; }

    /// <summary>The user's predicate.</summary>
    public Func<T, bool> Predicate { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new FilterExecutor<T>(this, factory.Input(Input));
}

/// <summary>A per-batch reduce by key.</summary>
internal sealed class ReduceNode<TKey, T> : OperatorNode<T> where TKey : notnull
{
    internal ReduceNode(string id, int version, OperatorNode<T> input, Func<T, TKey> keySelector, Func<T, T, T> reduce)
        : base(id, version, OperatorKind.Reduce, new OperatorNode[] { input })
    {
        Input = input;
        KeySelector = keySelector;
        Function = reduce;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<T> Input { get; }

    /// <summary>Reads the key of a record (generated from the stage's <c>Key</c>).</summary>
    public Func<T, TKey> KeySelector { get; }

    /// <summary>The user's associative combine method.</summary>
    public Func<T, T, T> Function { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new ReduceExecutor<TKey, T>(this, factory.Input(Input));
}

/// <summary>Keyed state carried across batches.</summary>
internal sealed class UpdateStateNode<TKey, TIn, TState, TOut> : OperatorNode<TOut> where TKey : notnull
{
    internal UpdateStateNode(
        string id,
        int version,
        OperatorNode<TIn> input,
        Func<TIn, TKey> keySelector,
        UpdateStateFunc<TKey, TIn, TState, TOut> update,
        IMessagePackFormatter<TKey> keyFormatter,
        IMessagePackFormatter<TState> stateFormatter,
        int idleTimeoutBatches,
        Func<TKey, TState, TOut>? onTimeout,
        IReadOnlyDictionary<int, StateDecoder<TState>> migrations)
        : base(id, version, OperatorKind.UpdateState, new OperatorNode[] { input })
    {
        Migrations = migrations;
        Input = input;
        KeySelector = keySelector;
        Function = update;
        KeyFormatter = keyFormatter;
        StateFormatter = stateFormatter;
        IdleTimeoutBatches = idleTimeoutBatches;
        OnTimeout = onTimeout;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<TIn> Input { get; }

    /// <summary>Reads the key of a record.</summary>
    public Func<TIn, TKey> KeySelector { get; }

    /// <summary>The user's update method.</summary>
    public UpdateStateFunc<TKey, TIn, TState, TOut> Function { get; }

    /// <summary>Serializes keys into snapshots.</summary>
    public IMessagePackFormatter<TKey> KeyFormatter { get; }

    /// <summary>Serializes state values into snapshots.</summary>
    public IMessagePackFormatter<TState> StateFormatter { get; }

    /// <summary>Batches without a record after which a key's state is removed; 0 = never.</summary>
    public int IdleTimeoutBatches { get; }

    /// <summary>The user's timeout method, if any.</summary>
    public Func<TKey, TState, TOut>? OnTimeout { get; }

    /// <summary>For each older version whose state can be migrated: a decoder that yields the current state type.</summary>
    public IReadOnlyDictionary<int, StateDecoder<TState>> Migrations { get; }

    internal override IEnumerable<int> MigrationVersions => Migrations.Keys.OrderBy(v => v);

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new UpdateStateExecutor<TKey, TIn, TState, TOut>(this, factory.Input(Input), factory.Parallelism, factory.StateBackend, factory.PipelineId);

    internal override bool AdvancesWithoutInput => IdleTimeoutBatches > 0;
}

/// <summary>A windowed aggregation by key.</summary>
internal sealed class WindowNode<TKey, T> : OperatorNode<Windowed<TKey, T>> where TKey : notnull
{
    internal WindowNode(
        string id,
        int version,
        OperatorNode<T> input,
        Func<T, TKey> keySelector,
        Func<T, T, T> reduce,
        IMessagePackFormatter<TKey> keyFormatter,
        IMessagePackFormatter<T> valueFormatter,
        int lengthBatches,
        int slideBatches)
        : base(id, version, OperatorKind.Window, new OperatorNode[] { input })
    {
        Input = input;
        KeySelector = keySelector;
        Function = reduce;
        KeyFormatter = keyFormatter;
        ValueFormatter = valueFormatter;
        LengthBatches = lengthBatches;
        SlideBatches = slideBatches;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<T> Input { get; }

    /// <summary>Reads the key of a record.</summary>
    public Func<T, TKey> KeySelector { get; }

    /// <summary>The user's associative combine method.</summary>
    public Func<T, T, T> Function { get; }

    /// <summary>Serializes keys into snapshots.</summary>
    public IMessagePackFormatter<TKey> KeyFormatter { get; }

    /// <summary>Serializes partial aggregates into snapshots.</summary>
    public IMessagePackFormatter<T> ValueFormatter { get; }

    /// <summary>The window length in batches.</summary>
    public int LengthBatches { get; }

    /// <summary>The slide in batches.</summary>
    public int SlideBatches { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new WindowExecutor<TKey, T>(this, factory.Input(Input));

    internal override bool AdvancesWithoutInput => true;
}

/// <summary>A union of inputs of one type.</summary>
internal sealed class UnionNode<T> : OperatorNode<T>
{
    internal UnionNode(string id, int version, IReadOnlyList<OperatorNode<T>> inputs)
        : base(id, version, OperatorKind.Union, inputs)
    {
        TypedInputs = inputs;
    }

    /// <summary>The upstream operators.</summary>
    public IReadOnlyList<OperatorNode<T>> TypedInputs { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new UnionExecutor<T>(this, TypedInputs.Select(factory.Input).ToArray());
}

/// <summary>An inner join of two keyed inputs within each batch.</summary>
internal sealed class JoinNode<TKey, TLeft, TRight, TOut> : OperatorNode<TOut> where TKey : notnull
{
    internal JoinNode(
        string id,
        int version,
        OperatorNode<TLeft> left,
        OperatorNode<TRight> right,
        Func<TLeft, TKey> leftKey,
        Func<TRight, TKey> rightKey,
        Func<TLeft, TRight, TOut> join)
        : base(id, version, OperatorKind.Join, new OperatorNode[] { left, right })
    {
        Left = left;
        Right = right;
        LeftKeySelector = leftKey;
        RightKeySelector = rightKey;
        Function = join;
    }

    /// <summary>The left input.</summary>
    public OperatorNode<TLeft> Left { get; }

    /// <summary>The right input.</summary>
    public OperatorNode<TRight> Right { get; }

    /// <summary>Reads the key of a left record.</summary>
    public Func<TLeft, TKey> LeftKeySelector { get; }

    /// <summary>Reads the key of a right record.</summary>
    public Func<TRight, TKey> RightKeySelector { get; }

    /// <summary>The user's join method.</summary>
    public Func<TLeft, TRight, TOut> Function { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new JoinExecutor<TKey, TLeft, TRight, TOut>(this, factory.Input(Left), factory.Input(Right));
}

/// <summary>A sink; its connector is bound at run time.</summary>
internal sealed class SinkNode<T> : OperatorNode
{
    internal SinkNode(string id, int version, OperatorNode<T> input)
        : base(id, version, OperatorKind.Sink, new OperatorNode[] { input })
    {
        Input = input;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<T> Input { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new SinkExecutor<T>(this, factory.Input(Input), factory.Sink<T>(Id));
}

/// <summary>A sink implemented by a pipeline method, called once per batch with the batch id.</summary>
internal sealed class ForEachBatchNode<T> : OperatorNode
{
    internal ForEachBatchNode(string id, int version, OperatorNode<T> input, Func<long, IReadOnlyList<T>, Task> write)
        : base(id, version, OperatorKind.ForEachBatch, new OperatorNode[] { input })
    {
        Input = input;
        Function = write;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<T> Input { get; }

    /// <summary>The user's method (a void method is adapted by the generated code).</summary>
    public Func<long, IReadOnlyList<T>, Task> Function { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new ForEachBatchExecutor<T>(this, factory.Input(Input));
}
