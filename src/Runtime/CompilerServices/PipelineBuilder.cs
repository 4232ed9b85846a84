using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using System.ComponentModel;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.CompilerServices;

/// <summary>
/// Assembles a <see cref="PipelineDefinition"/>. The generated code of each pipeline class calls it;
/// user code does not need to.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class PipelineBuilder
{
    private readonly string _pipelineId;
    private readonly string _manifestJson;
    private readonly List<OperatorNode> _nodes = new();
    private readonly HashSet<string> _ids = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _retired = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SortedSet<int>> _discarded = new(StringComparer.Ordinal);

    /// <summary>Starts a definition for the pipeline with the given id and generated manifest.</summary>
    public PipelineBuilder(string pipelineId, string manifestJson)
    {
        _pipelineId = pipelineId ?? throw new ArgumentNullException(nameof(pipelineId));
        _manifestJson = manifestJson ?? throw new ArgumentNullException(nameof(manifestJson));
    }

    /// <summary>Adds a source.</summary>
    public OperatorNode<T> Source<T>(string id, int version) => Add(new SourceNode<T>(id, version));

    /// <summary>Adds a map stage.</summary>
    public OperatorNode<TOut> Map<TIn, TOut>(string id, int version, OperatorNode<TIn> input, Func<TIn, TOut> map) =>
        Add(new MapNode<TIn, TOut>(id, version, Own(input), map ?? throw new ArgumentNullException(nameof(map))));

    /// <summary>Adds a map stage whose function also receives the batch's processing time (<see cref="BatchTime"/>).</summary>
    public OperatorNode<TOut> MapWithBatchTime<TIn, TOut>(string id, int version, OperatorNode<TIn> input, Func<TIn, BatchTime, TOut> map) =>
        Add(new MapNode<TIn, TOut>(id, version, Own(input), map ?? throw new ArgumentNullException(nameof(map))));

    /// <summary>Adds a flat-map stage.</summary>
    public OperatorNode<TOut> FlatMap<TIn, TOut>(string id, int version, OperatorNode<TIn> input, Func<TIn, IEnumerable<TOut>> flatMap) =>
        Add(new FlatMapNode<TIn, TOut>(id, version, Own(input), flatMap ?? throw new ArgumentNullException(nameof(flatMap))));

    /// <summary>Adds a filter stage.</summary>
    public OperatorNode<T> Filter<T>(string id, int version, OperatorNode<T> input, Func<T, bool> predicate) =>
        Add(new FilterNode<T>(id, version, Own(input), predicate ?? throw new ArgumentNullException(nameof(predicate))));

    /// <summary>Adds a per-batch reduce by key.</summary>
    public OperatorNode<T> Reduce<TKey, T>(string id, int version, OperatorNode<T> input, Func<T, TKey> keySelector, Func<T, T, T> reduce)
        where TKey : notnull =>
        Add(new ReduceNode<TKey, T>(id, version, Own(input), keySelector ?? throw new ArgumentNullException(nameof(keySelector)), reduce ?? throw new ArgumentNullException(nameof(reduce))));

    /// <summary>Adds keyed state carried across batches.</summary>
    public OperatorNode<TOut> UpdateState<TKey, TIn, TState, TOut>(
        string id,
        int version,
        OperatorNode<TIn> input,
        Func<TIn, TKey> keySelector,
        UpdateStateFunc<TKey, TIn, TState, TOut> update,
        IMessagePackFormatter<TKey> keyFormatter,
        IMessagePackFormatter<TState> stateFormatter,
        int idleTimeoutBatches = 0,
        Func<TKey, TState, TOut>? onTimeout = null,
        IReadOnlyDictionary<int, StateDecoder<TState>>? migrations = null)
        where TKey : notnull
    {
        if (idleTimeoutBatches < 0) throw new ArgumentOutOfRangeException(nameof(idleTimeoutBatches), "idleTimeoutBatches must be 0 (never) or more.");
        return Add(new UpdateStateNode<TKey, TIn, TState, TOut>(
            id, version, Own(input),
            keySelector ?? throw new ArgumentNullException(nameof(keySelector)),
            update ?? throw new ArgumentNullException(nameof(update)),
            keyFormatter ?? throw new ArgumentNullException(nameof(keyFormatter)),
            stateFormatter ?? throw new ArgumentNullException(nameof(stateFormatter)),
            idleTimeoutBatches,
            onTimeout,
            migrations ?? new Dictionary<int, StateDecoder<TState>>()));
    }

    /// <summary>Declares that an operator of earlier builds was removed on purpose; its state and positions are dropped on restore.</summary>
    public void Retire(string operatorId)
    {
        if (string.IsNullOrEmpty(operatorId)) throw new ArgumentException("The retired operator id must be non-empty.", nameof(operatorId));
        _retired.Add(operatorId);
    }

    /// <summary>Declares that state written by <paramref name="fromVersion"/> of an operator is dropped on restore.</summary>
    public void DiscardState(string operatorId, int fromVersion)
    {
        if (!_discarded.TryGetValue(operatorId, out var versions)) _discarded[operatorId] = versions = new SortedSet<int>();
        versions.Add(fromVersion);
    }

    /// <summary>Adds a windowed aggregation by key.</summary>
    public OperatorNode<Windowed<TKey, T>> Window<TKey, T>(
        string id,
        int version,
        OperatorNode<T> input,
        Func<T, TKey> keySelector,
        Func<T, T, T> reduce,
        IMessagePackFormatter<TKey> keyFormatter,
        IMessagePackFormatter<T> valueFormatter,
        int lengthBatches,
        int slideBatches)
        where TKey : notnull
    {
        if (slideBatches < 1) throw new ArgumentOutOfRangeException(nameof(slideBatches), "slideBatches must be 1 or more.");
        if (lengthBatches < slideBatches || lengthBatches % slideBatches != 0)
            throw new ArgumentOutOfRangeException(nameof(lengthBatches), "lengthBatches must be a positive multiple of slideBatches.");
        return Add(new WindowNode<TKey, T>(
            id, version, Own(input),
            keySelector ?? throw new ArgumentNullException(nameof(keySelector)),
            reduce ?? throw new ArgumentNullException(nameof(reduce)),
            keyFormatter ?? throw new ArgumentNullException(nameof(keyFormatter)),
            valueFormatter ?? throw new ArgumentNullException(nameof(valueFormatter)),
            lengthBatches,
            slideBatches));
    }

    /// <summary>Adds a union of two or more inputs.</summary>
    public OperatorNode<T> Union<T>(string id, int version, params OperatorNode<T>[] inputs)
    {
        if (inputs is null || inputs.Length < 2) throw new PipelineDefinitionException($"Union '{id}' needs two or more inputs.");
        return Add(new UnionNode<T>(id, version, inputs.Select(Own).ToArray()));
    }

    /// <summary>Adds an inner join of two keyed inputs.</summary>
    public OperatorNode<TOut> Join<TKey, TLeft, TRight, TOut>(
        string id,
        int version,
        OperatorNode<TLeft> left,
        OperatorNode<TRight> right,
        Func<TLeft, TKey> leftKey,
        Func<TRight, TKey> rightKey,
        Func<TLeft, TRight, TOut> join)
        where TKey : notnull =>
        Add(new JoinNode<TKey, TLeft, TRight, TOut>(
            id, version, Own(left), Own(right),
            leftKey ?? throw new ArgumentNullException(nameof(leftKey)),
            rightKey ?? throw new ArgumentNullException(nameof(rightKey)),
            join ?? throw new ArgumentNullException(nameof(join))));

    /// <summary>Adds a watermark stage: declares the event time of its input and tracks the watermark.</summary>
    public OperatorNode<T> Watermark<T>(string id, int version, OperatorNode<T> input, Func<T, long> timeSelector, long maxOutOfOrdernessMs)
    {
        if (maxOutOfOrdernessMs < 0) throw new ArgumentOutOfRangeException(nameof(maxOutOfOrdernessMs), "maxOutOfOrdernessMs must be 0 or more.");
        return Add(new WatermarkNode<T>(id, version, Own(input), timeSelector ?? throw new ArgumentNullException(nameof(timeSelector)), maxOutOfOrdernessMs));
    }

    /// <summary>Adds event-time tumbling (slide = size) or hopping windows by key.</summary>
    public OperatorNode<EventWindow<TKey, T>> EventTimeWindow<TKey, T>(
        string id, int version, OperatorNode<T> input, Func<T, TKey> keySelector, Func<T, long> timeSelector, Func<T, T, T> reduce,
        IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<T> valueFormatter, long sizeMs, long slideMs)
        where TKey : notnull
    {
        if (sizeMs < 1) throw new ArgumentOutOfRangeException(nameof(sizeMs), "sizeMs must be 1 or more.");
        if (slideMs < 1 || slideMs > sizeMs) throw new ArgumentOutOfRangeException(nameof(slideMs), "slideMs must be between 1 and sizeMs.");
        return Add(new EventTimeWindowNode<TKey, T>(
            id, version, Own(input),
            keySelector ?? throw new ArgumentNullException(nameof(keySelector)),
            timeSelector ?? throw new ArgumentNullException(nameof(timeSelector)),
            reduce ?? throw new ArgumentNullException(nameof(reduce)),
            keyFormatter ?? throw new ArgumentNullException(nameof(keyFormatter)),
            valueFormatter ?? throw new ArgumentNullException(nameof(valueFormatter)),
            sizeMs, slideMs));
    }

    /// <summary>Adds event-time session windows by key.</summary>
    public OperatorNode<EventWindow<TKey, T>> SessionWindow<TKey, T>(
        string id, int version, OperatorNode<T> input, Func<T, TKey> keySelector, Func<T, long> timeSelector, Func<T, T, T> reduce,
        IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<T> valueFormatter, long gapMs)
        where TKey : notnull
    {
        if (gapMs < 1) throw new ArgumentOutOfRangeException(nameof(gapMs), "gapMs must be 1 or more.");
        return Add(new SessionWindowNode<TKey, T>(
            id, version, Own(input),
            keySelector ?? throw new ArgumentNullException(nameof(keySelector)),
            timeSelector ?? throw new ArgumentNullException(nameof(timeSelector)),
            reduce ?? throw new ArgumentNullException(nameof(reduce)),
            keyFormatter ?? throw new ArgumentNullException(nameof(keyFormatter)),
            valueFormatter ?? throw new ArgumentNullException(nameof(valueFormatter)),
            gapMs));
    }

    /// <summary>Adds an inner join of two streams across batches; unbounded when <paramref name="bounds"/> is null.</summary>
    public OperatorNode<TOut> StreamJoin<TKey, TLeft, TRight, TOut>(
        string id, int version, OperatorNode<TLeft> left, OperatorNode<TRight> right,
        Func<TLeft, TKey> leftKey, Func<TRight, TKey> rightKey, Func<TLeft, TRight, TOut> join,
        IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<TLeft> leftFormatter, IMessagePackFormatter<TRight> rightFormatter,
        JoinTimeBounds<TLeft, TRight>? bounds = null)
        where TKey : notnull
    {
        if (bounds is not null && bounds.LowerBoundMs > bounds.UpperBoundMs && bounds.LeftEndTime is null)
            throw new ArgumentOutOfRangeException(nameof(bounds), "The lower bound must not be above the upper bound.");
        return Add(new StreamJoinNode<TKey, TLeft, TRight, TOut>(
            id, version, Own(left), Own(right),
            leftKey ?? throw new ArgumentNullException(nameof(leftKey)),
            rightKey ?? throw new ArgumentNullException(nameof(rightKey)),
            join ?? throw new ArgumentNullException(nameof(join)),
            keyFormatter ?? throw new ArgumentNullException(nameof(keyFormatter)),
            leftFormatter ?? throw new ArgumentNullException(nameof(leftFormatter)),
            rightFormatter ?? throw new ArgumentNullException(nameof(rightFormatter)),
            bounds));
    }

    /// <summary>Adds a sink bound at run time.</summary>
    public void Sink<T>(string id, int version, OperatorNode<T> input) => Add(new SinkNode<T>(id, version, Own(input)));

    /// <summary>Adds a for-each-batch sink implemented by a method returning a task.</summary>
    public void ForEachBatch<T>(string id, int version, OperatorNode<T> input, Func<long, IReadOnlyList<T>, Task> write) =>
        Add(new ForEachBatchNode<T>(id, version, Own(input), write ?? throw new ArgumentNullException(nameof(write))));

    /// <summary>Adds a for-each-batch sink implemented by a void method.</summary>
    public void ForEachBatch<T>(string id, int version, OperatorNode<T> input, Action<long, IReadOnlyList<T>> write)
    {
        if (write is null) throw new ArgumentNullException(nameof(write));
        ForEachBatch<T>(id, version, input, (batchId, records) =>
        {
            write(batchId, records);
            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// Finishes the definition, checking that the wiring and the manifest describe the same graph.
    /// </summary>
    public PipelineDefinition Build()
    {
        var manifest = PipelineManifest.Parse(_manifestJson);
        if (!string.Equals(manifest.PipelineId, _pipelineId, StringComparison.Ordinal))
            throw new PipelineDefinitionException($"The manifest names pipeline '{manifest.PipelineId}' but the wiring builds '{_pipelineId}'.");
        foreach (var node in _nodes)
        {
            var entry = manifest.Find(node.Id)
                ?? throw new PipelineDefinitionException($"Operator '{node.Id}' of pipeline '{_pipelineId}' is missing from its manifest. Rebuild with the same PipelineDsl version for generator and runtime.");
            if (entry.Version != node.Version || entry.Kind != OperatorManifest.KindName(node.Kind) || !entry.Inputs.SequenceEqual(node.Inputs.Select(i => i.Id)))
                throw new PipelineDefinitionException($"Operator '{node.Id}' of pipeline '{_pipelineId}' differs between its wiring and its manifest. Rebuild with the same PipelineDsl version for generator and runtime.");
        }

        if (manifest.Operators.Count != _nodes.Count)
            throw new PipelineDefinitionException($"The manifest of pipeline '{_pipelineId}' lists {manifest.Operators.Count} operators but the wiring builds {_nodes.Count}.");
        // Restore decisions are taken from the manifest; the wiring must agree with it.
        if (!manifest.Retired.OrderBy(r => r, StringComparer.Ordinal).SequenceEqual(_retired))
            throw new PipelineDefinitionException($"The retired operators of pipeline '{_pipelineId}' differ between its wiring and its manifest. Rebuild with the same PipelineDsl version for generator and runtime.");
        foreach (var entry in manifest.Operators)
        {
            var migrations = _nodes.First(n => n.Id == entry.Id).MigrationVersions;
            var discarded = _discarded.TryGetValue(entry.Id, out var d) ? d.ToArray() : Array.Empty<int>();
            if (!entry.MigratesFrom.SequenceEqual(migrations) || !entry.DiscardsStateFrom.SequenceEqual(discarded))
                throw new PipelineDefinitionException($"The migrations or discards of operator '{entry.Id}' differ between its wiring and its manifest. Rebuild with the same PipelineDsl version for generator and runtime.");
        }

        return new PipelineDefinition(_pipelineId, manifest, _nodes.ToArray());
    }

    private TNode Add<TNode>(TNode node) where TNode : OperatorNode
    {
        if (!_ids.Add(node.Id)) throw new PipelineDefinitionException($"Pipeline '{_pipelineId}' declares operator '{node.Id}' twice.");
        _nodes.Add(node);
        return node;
    }

    private OperatorNode<T> Own<T>(OperatorNode<T> input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        if (!_nodes.Contains(input)) throw new PipelineDefinitionException($"Operator '{input.Id}' does not belong to pipeline '{_pipelineId}' (or was added after its consumer).");
        return input;
    }
}
