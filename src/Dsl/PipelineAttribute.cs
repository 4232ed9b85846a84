using System;

namespace PipelineDsl
{
    /// <summary>
    /// Marks a <c>partial</c> class as a pipeline. The source generator turns its annotated
    /// members into an operator graph, a manifest and the wiring that calls them.
    /// </summary>
    /// <remarks>
    /// The pipeline id, not the class name, identifies the pipeline in checkpoints: the class
    /// can be renamed or moved to another namespace without stranding existing checkpoints.
    /// </remarks>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class PipelineAttribute : Attribute
    {
        /// <summary>Declares a pipeline with a stable id.</summary>
        /// <param name="id">Stable id: letters, digits, '-', '_' or '.', starting with a letter or digit.</param>
        public PipelineAttribute(string id) => Id = id;

        /// <summary>The stable id of the pipeline, stored in every checkpoint.</summary>
        public string Id { get; }
    }

    /// <summary>
    /// Base of every attribute that declares an operator. Each operator has an explicit,
    /// stable string id and an integer version; neither is ever derived from member names.
    /// </summary>
    public abstract class OperatorAttribute : Attribute
    {
        /// <summary>Creates the attribute with the operator's stable id.</summary>
        protected OperatorAttribute(string id) => Id = id;

        /// <summary>The stable id of the operator, unique within its pipeline.</summary>
        public string Id { get; }

        /// <summary>
        /// The operator's version (1 or more). Bump it when the meaning or the schema of the
        /// operator's state changes; checkpoints record it.
        /// </summary>
        public int Version { get; set; } = 1;
    }

    /// <summary>Base of operators that read exactly one upstream element.</summary>
    public abstract class StageAttribute : OperatorAttribute
    {
        /// <summary>Creates the attribute with the operator's stable id.</summary>
        protected StageAttribute(string id) : base(id) { }

        /// <summary>The id of the upstream source or stage this operator reads.</summary>
        public string? From { get; set; }
    }

    /// <summary>Base of operators that group their input by a key.</summary>
    public abstract class KeyedStageAttribute : StageAttribute
    {
        /// <summary>Creates the attribute with the operator's stable id.</summary>
        protected KeyedStageAttribute(string id) : base(id) { }

        /// <summary>
        /// The name of the property or field of the input type that holds the key,
        /// usually written <c>nameof(MyRecord.UserId)</c>.
        /// </summary>
        public string? Key { get; set; }
    }

    /// <summary>
    /// Declares a source on a <c>static partial</c> method returning <see cref="Source{T}"/>.
    /// The generator implements the method; the connector is bound at run time.
    /// </summary>
    /// <example><code>[Source("clicks")] public static partial Source&lt;Click&gt; Clicks();</code></example>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class SourceAttribute : OperatorAttribute
    {
        /// <summary>Declares a source with a stable id.</summary>
        public SourceAttribute(string id) : base(id) { }
    }

    /// <summary>
    /// Declares a sink on a <c>static partial</c> method returning <see cref="Sink{T}"/>.
    /// The generator implements the method; the connector is bound at run time.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class SinkAttribute : StageAttribute
    {
        /// <summary>Declares a sink with a stable id.</summary>
        public SinkAttribute(string id) : base(id) { }
    }

    /// <summary>
    /// Declares a sink implemented by the method itself, called once per batch with the batch id:
    /// <c>static void M(long batchId, IReadOnlyList&lt;T&gt; records)</c> (or returning <c>Task</c>).
    /// A batch can be delivered again after a crash; use the batch id to make writes idempotent.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class ForEachBatchAttribute : StageAttribute
    {
        /// <summary>Declares a for-each-batch sink with a stable id.</summary>
        public ForEachBatchAttribute(string id) : base(id) { }
    }

    /// <summary>A one-to-one transformation: <c>static TOut M(TIn value)</c>.</summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class MapAttribute : StageAttribute
    {
        /// <summary>Declares a map stage with a stable id.</summary>
        public MapAttribute(string id) : base(id) { }
    }

    /// <summary>A one-to-many transformation: <c>static IEnumerable&lt;TOut&gt; M(TIn value)</c>.</summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class FlatMapAttribute : StageAttribute
    {
        /// <summary>Declares a flat-map stage with a stable id.</summary>
        public FlatMapAttribute(string id) : base(id) { }
    }

    /// <summary>Keeps the records for which <c>static bool M(T value)</c> returns true.</summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class FilterAttribute : StageAttribute
    {
        /// <summary>Declares a filter stage with a stable id.</summary>
        public FilterAttribute(string id) : base(id) { }
    }

    /// <summary>
    /// Combines the records of one batch that share a key: <c>static T M(T a, T b)</c>, which must be
    /// associative. Emits one record per key per batch. Keeps no state across batches.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class ReduceAttribute : KeyedStageAttribute
    {
        /// <summary>Declares a per-batch reduce-by-key stage with a stable id.</summary>
        public ReduceAttribute(string id) : base(id) { }
    }

    /// <summary>
    /// Keyed state carried across batches and checkpointed (Spark's <c>mapWithState</c>):
    /// <c>static TOut M(TKey key, TIn value, KeyedState&lt;TState&gt; state)</c>, called once per record.
    /// A <c>null</c> result emits nothing. <c>TState</c> must be a <see cref="StateContractAttribute">state contract</see>
    /// or a primitive. Change the state only through <c>state.Update</c> or <c>state.Remove</c>, also when you
    /// modify a state object in place: a key whose state was not updated is left out of the batch's checkpoint
    /// delta (unless <c>IdleTimeoutBatches</c> needs the batch it was last seen in).
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class UpdateStateAttribute : KeyedStageAttribute
    {
        /// <summary>Declares a stateful stage with a stable id.</summary>
        public UpdateStateAttribute(string id) : base(id) { }

        /// <summary>
        /// Removes a key's state after this many batches without a record for it (0 = never).
        /// Measured in batches so that replay after a crash expires exactly the same keys.
        /// </summary>
        public int IdleTimeoutBatches { get; set; }

        /// <summary>
        /// Optional name of a method <c>static TOut M(TKey key, TState state)</c> in the pipeline class,
        /// called when a key's state times out; its non-null result is emitted.
        /// </summary>
        public string? OnTimeout { get; set; }
    }

    /// <summary>
    /// Windowed aggregation by key over the last <see cref="LengthBatches"/> batches, emitted every
    /// <see cref="SlideBatches"/> batches: <c>static T M(T a, T b)</c>, associative. The output type is
    /// <see cref="Windowed{TKey, TValue}"/>. Partial aggregates are checkpointed, so <c>T</c> and the key
    /// must be state contracts or primitives.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class WindowAttribute : KeyedStageAttribute
    {
        /// <summary>Declares a windowed aggregation with a stable id.</summary>
        public WindowAttribute(string id) : base(id) { }

        /// <summary>The window length in batches (1 or more, a multiple of <see cref="SlideBatches"/>).</summary>
        public int LengthBatches { get; set; }

        /// <summary>How often, in batches, a window is emitted (1 or more). Defaults to 1.</summary>
        public int SlideBatches { get; set; } = 1;
    }

    /// <summary>
    /// Merges several upstream elements of the same record type, declared on a
    /// <c>static partial</c> method returning <see cref="Stream{T}"/>.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class UnionAttribute : OperatorAttribute
    {
        /// <summary>Declares a union with a stable id and its inputs.</summary>
        /// <param name="id">Stable id of the union.</param>
        /// <param name="from">Ids of the upstream elements, two or more.</param>
        public UnionAttribute(string id, params string[] from) : base(id) => From = from;

        /// <summary>The ids of the upstream elements.</summary>
        public string[] From { get; }
    }

    /// <summary>
    /// Inner join of two keyed inputs within each batch: <c>static TOut M(TLeft left, TRight right)</c>,
    /// called for every pair of records with equal keys.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class JoinAttribute : OperatorAttribute
    {
        /// <summary>Declares a join with a stable id.</summary>
        public JoinAttribute(string id) : base(id) { }

        /// <summary>The id of the left input.</summary>
        public string? Left { get; set; }

        /// <summary>The id of the right input.</summary>
        public string? Right { get; set; }

        /// <summary>The property or field of the left record type that holds the key.</summary>
        public string? LeftKey { get; set; }

        /// <summary>The property or field of the right record type that holds the key.</summary>
        public string? RightKey { get; set; }
    }
}
