using System;
using System.Collections.Generic;
using System.ComponentModel;
using PipelineDsl.Execution;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.CompilerServices;

/// <summary>
/// Reads a state value written by an older version of an operator and returns it as the current state
/// type (the generated code chains the declared <see cref="StateMigrationAttribute">migrations</see>).
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public delegate TState StateDecoder<TState>(ref MessagePackReader reader);

/// <summary>The signature of an update-state method.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public delegate TOut UpdateStateFunc<TKey, TIn, TState, TOut>(TKey key, TIn value, KeyedState<TState> state);

/// <summary>
/// An operator of a pipeline's graph: its identity and its inputs. Opaque outside the runtime: generated code
/// passes nodes from one <see cref="PipelineBuilder"/> call to the next; the graph's description for users is
/// its <see cref="PipelineManifest"/>.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public abstract class OperatorNode
{
    private protected OperatorNode(string id, int version, OperatorKind kind, IReadOnlyList<OperatorNode> inputs)
    {
        Id = id;
        Version = version;
        Kind = kind;
        Inputs = inputs;
    }

    /// <summary>The stable id of the operator.</summary>
    internal string Id { get; }

    /// <summary>The operator's version.</summary>
    internal int Version { get; }

    /// <summary>The operator's kind.</summary>
    internal OperatorKind Kind { get; }

    /// <summary>The upstream operators, in declaration order (left before right for joins).</summary>
    internal IReadOnlyList<OperatorNode> Inputs { get; }

    /// <summary>True when the operator keeps state across batches (and so in checkpoints).</summary>
    internal bool IsStateful => OperatorKinds.KeepsState(OperatorManifest.KindName(Kind));

    /// <inheritdoc />
    public override string ToString() => $"{Kind} '{Id}' v{Version}";

    /// <summary>Creates the executor of this operator; each node knows its own type arguments, so no reflection is needed.</summary>
    internal abstract OperatorExecutor CreateExecutor(ExecutorFactory factory);

    /// <summary>True when batches without input still change this operator (windows slide, idle keys expire).</summary>
    internal virtual bool AdvancesWithoutInput => false;

    /// <summary>The older versions whose state this operator migrates, ascending.</summary>
    internal virtual IEnumerable<int> MigrationVersions => Array.Empty<int>();
}

/// <summary>An operator that produces records of type <typeparamref name="T"/> (opaque; see <see cref="OperatorNode"/>).</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public abstract class OperatorNode<T> : OperatorNode
{
    private protected OperatorNode(string id, int version, OperatorKind kind, IReadOnlyList<OperatorNode> inputs)
        : base(id, version, kind, inputs)
    {
    }
}
