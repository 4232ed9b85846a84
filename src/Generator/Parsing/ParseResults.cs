using PipelineDsl.Generator.Diagnostics;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>What parsing one pipeline class produced: a model (null when nothing can be emitted) and diagnostics.</summary>
    internal sealed record PipelineParseResult(PipelineSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics);

    /// <summary>What parsing one state contract produced.</summary>
    internal sealed record ContractParseResult(ContractSpec? Spec, EquatableArray<DiagnosticInfo> Diagnostics);
}
