using System;
using PipelineDsl.Execution;
using PipelineDsl.Serialization;

using PipelineDsl.CompilerServices;

namespace PipelineDsl.Graph;

/// <summary>
/// Declares the event time of a stream and tracks its watermark: the largest event time seen so far minus
/// the allowed out-of-orderness. Records pass through unchanged.
/// </summary>
internal sealed class WatermarkNode<T> : OperatorNode<T>
{
    internal WatermarkNode(string id, int version, OperatorNode<T> input, Func<T, long> timeSelector, long maxOutOfOrdernessMs)
        : base(id, version, OperatorKind.Watermark, new OperatorNode[] { input })
    {
        Input = input;
        TimeSelector = timeSelector;
        MaxOutOfOrdernessMs = maxOutOfOrdernessMs;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<T> Input { get; }

    /// <summary>Reads a record's event time (Unix milliseconds).</summary>
    public Func<T, long> TimeSelector { get; }

    /// <summary>How far behind the newest event time a record may arrive and still count.</summary>
    public long MaxOutOfOrdernessMs { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) => new WatermarkExecutor<T>(this, factory.Input(Input), factory.SourcesUpstreamOf(this));
}

/// <summary>What event-time and session windows share: a keyed, timed input combined by an associative method.</summary>
internal abstract class KeyedEventTimeNode<TKey, T> : OperatorNode<EventWindow<TKey, T>> where TKey : notnull
{
    private protected KeyedEventTimeNode(
        string id, int version, OperatorKind kind, OperatorNode<T> input, Func<T, TKey> keySelector, Func<T, long> timeSelector, Func<T, T, T> reduce,
        IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<T> valueFormatter)
        : base(id, version, kind, new OperatorNode[] { input })
    {
        Input = input;
        KeySelector = keySelector;
        TimeSelector = timeSelector;
        Function = reduce;
        KeyFormatter = keyFormatter;
        ValueFormatter = valueFormatter;
    }

    /// <summary>The upstream operator.</summary>
    public OperatorNode<T> Input { get; }

    /// <summary>Reads the key of a record.</summary>
    public Func<T, TKey> KeySelector { get; }

    /// <summary>Reads the event time of a record.</summary>
    public Func<T, long> TimeSelector { get; }

    /// <summary>The user's associative combine method.</summary>
    public Func<T, T, T> Function { get; }

    /// <summary>Serializes keys into checkpoints.</summary>
    public IMessagePackFormatter<TKey> KeyFormatter { get; }

    /// <summary>Serializes partial aggregates into checkpoints.</summary>
    public IMessagePackFormatter<T> ValueFormatter { get; }

    internal override bool AdvancesWithoutInput => true;
}

/// <summary>Event-time tumbling (slide = size) or hopping windows by key, aligned to the Unix epoch.</summary>
internal sealed class EventTimeWindowNode<TKey, T> : KeyedEventTimeNode<TKey, T> where TKey : notnull
{
    internal EventTimeWindowNode(
        string id, int version, OperatorNode<T> input, Func<T, TKey> keySelector, Func<T, long> timeSelector, Func<T, T, T> reduce,
        IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<T> valueFormatter, long sizeMs, long slideMs)
        : base(id, version, OperatorKind.EventTimeWindow, input, keySelector, timeSelector, reduce, keyFormatter, valueFormatter)
    {
        SizeMs = sizeMs;
        SlideMs = slideMs;
    }

    /// <summary>The window length in milliseconds.</summary>
    public long SizeMs { get; }

    /// <summary>The distance between window starts in milliseconds (equal to the size for tumbling windows).</summary>
    public long SlideMs { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) =>
        new EventTimeWindowExecutor<TKey, T>(this, factory.Input(Input), factory.WatermarkOf(this), factory.StateBackend, factory.PipelineId);
}

/// <summary>Event-time session windows by key: a key's records less than a gap apart form one window.</summary>
internal sealed class SessionWindowNode<TKey, T> : KeyedEventTimeNode<TKey, T> where TKey : notnull
{
    internal SessionWindowNode(
        string id, int version, OperatorNode<T> input, Func<T, TKey> keySelector, Func<T, long> timeSelector, Func<T, T, T> reduce,
        IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<T> valueFormatter, long gapMs)
        : base(id, version, OperatorKind.SessionWindow, input, keySelector, timeSelector, reduce, keyFormatter, valueFormatter)
    {
        GapMs = gapMs;
    }

    /// <summary>The inactivity gap that closes a session, in milliseconds.</summary>
    public long GapMs { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) =>
        new SessionWindowExecutor<TKey, T>(this, factory.Input(Input), factory.WatermarkOf(this), factory.StateBackend, factory.PipelineId);
}


/// <summary>
/// Inner join of two streams by key across batches. Each record is kept in state and matched with the other
/// side's records of this and later batches; with time bounds, a record leaves state once the watermark shows
/// that no record it could still match can arrive.
/// </summary>
internal sealed class StreamJoinNode<TKey, TLeft, TRight, TOut> : OperatorNode<TOut> where TKey : notnull
{
    internal StreamJoinNode(
        string id, int version, OperatorNode<TLeft> left, OperatorNode<TRight> right,
        Func<TLeft, TKey> leftKey, Func<TRight, TKey> rightKey, Func<TLeft, TRight, TOut> join,
        IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<TLeft> leftFormatter, IMessagePackFormatter<TRight> rightFormatter,
        JoinTimeBounds<TLeft, TRight>? bounds)
        : base(id, version, OperatorKind.StreamJoin, new OperatorNode[] { left, right })
    {
        Left = left;
        Right = right;
        LeftKeySelector = leftKey;
        RightKeySelector = rightKey;
        Function = join;
        KeyFormatter = keyFormatter;
        LeftFormatter = leftFormatter;
        RightFormatter = rightFormatter;
        Bounds = bounds;
    }

    /// <summary>The left input.</summary>
    public OperatorNode<TLeft> Left { get; }

    /// <summary>The right input.</summary>
    public OperatorNode<TRight> Right { get; }

    /// <summary>Reads the key of a left record.</summary>
    public Func<TLeft, TKey> LeftKeySelector { get; }

    /// <summary>Reads the key of a right record.</summary>
    public Func<TRight, TKey> RightKeySelector { get; }

    /// <summary>The user's join method; a null result emits nothing (a residual condition).</summary>
    public Func<TLeft, TRight, TOut> Function { get; }

    /// <summary>Serializes keys into checkpoints.</summary>
    public IMessagePackFormatter<TKey> KeyFormatter { get; }

    /// <summary>Serializes left records into checkpoints.</summary>
    public IMessagePackFormatter<TLeft> LeftFormatter { get; }

    /// <summary>Serializes right records into checkpoints.</summary>
    public IMessagePackFormatter<TRight> RightFormatter { get; }

    /// <summary>The time bounds, or null for an unbounded join that keeps every record.</summary>
    public JoinTimeBounds<TLeft, TRight>? Bounds { get; }

    internal override OperatorExecutor CreateExecutor(ExecutorFactory factory) =>
        new StreamJoinExecutor<TKey, TLeft, TRight, TOut>(this, factory.Input(Left), factory.Input(Right), Bounds is null ? null : factory.WatermarkOf(this), factory.StateBackend, factory.PipelineId);

    internal override bool AdvancesWithoutInput => Bounds is not null;
}
