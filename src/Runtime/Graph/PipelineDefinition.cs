using System;
using System.Collections.Generic;
using System.Linq;
using PipelineDsl.CompilerServices;

namespace PipelineDsl.Graph;

/// <summary>
/// Thrown when a pipeline definition is inconsistent: a duplicate id, an input from another pipeline,
/// or wiring that disagrees with the manifest (a generator/runtime version mismatch).
/// </summary>
public sealed class PipelineDefinitionException : PipelineDslException
{
    /// <summary>Creates the exception.</summary>
    public PipelineDefinitionException(string message) : base(message) { }

    /// <inheritdoc />
    public override bool IsTransient => false;
}

/// <summary>
/// A pipeline's executable graph: its operators in a topological order (every operator after its inputs)
/// and its manifest. Each generated pipeline class exposes one as <c>Definition</c>.
/// </summary>
public sealed class PipelineDefinition
{
    internal PipelineDefinition(string pipelineId, PipelineManifest manifest, IReadOnlyList<OperatorNode> operators)
    {
        PipelineId = pipelineId;
        Manifest = manifest;
        Operators = operators;
    }

    /// <summary>The pipeline id.</summary>
    public string PipelineId { get; }

    /// <summary>The manifest stored in every checkpoint of this pipeline.</summary>
    public PipelineManifest Manifest { get; }

    /// <summary>The operators, every one after its inputs.</summary>
    internal IReadOnlyList<OperatorNode> Operators { get; }

    /// <summary>The operator with the given id.</summary>
    /// <exception cref="KeyNotFoundException">No such operator; the message lists the ids.</exception>
    internal OperatorNode GetOperator(string id) =>
        Operators.FirstOrDefault(o => o.Id == id)
        ?? throw new KeyNotFoundException($"Pipeline '{PipelineId}' has no operator '{id}'. Its operators: {string.Join(", ", Operators.Select(o => o.Id))}.");
}
