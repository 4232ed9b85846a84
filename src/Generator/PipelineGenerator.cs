using System;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PipelineDsl.Generator.Diagnostics;
using PipelineDsl.Generator.Emitting;
using PipelineDsl.Generator.Model;
using PipelineDsl.Generator.Parsing;

namespace PipelineDsl.Generator
{
    /// <summary>
    /// The PipelineDsl incremental generator. Wiring only: parsing (Parsing/) turns symbols into
    /// value models, emitting (Emitting/) turns models into source, and diagnostics travel apart from
    /// source so that a diagnostic's location never invalidates generated code.
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class PipelineGenerator : IIncrementalGenerator
    {
        /// <inheritdoc />
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var pipelines = context.SyntaxProvider
                .ForAttributeWithMetadataName(KnownNames.PipelineAttribute, static (node, _) => node is ClassDeclarationSyntax, PipelineParser.Parse)
                .WithTrackingName(TrackingNames.PipelineParse);

            var pipelineSpecs = pipelines.Select(static (r, _) => r.Spec).WithTrackingName(TrackingNames.PipelineSpecs);
            context.RegisterSourceOutput(pipelineSpecs, static (spc, spec) =>
            {
                if (spec is null) return;
                Emit(spc, spec.Target.Type.Name, () => (PipelineEmitter.HintName(spec), PipelineEmitter.Emit(spec)));
            });

            var pipelineDiagnostics = pipelines.Select(static (r, _) => r.Diagnostics).WithTrackingName(TrackingNames.PipelineDiagnostics);
            context.RegisterSourceOutput(pipelineDiagnostics, static (spc, diagnostics) => Report(spc, diagnostics));

            var pipelineIds = context.SyntaxProvider
                .ForAttributeWithMetadataName(KnownNames.PipelineAttribute, static (node, _) => node is ClassDeclarationSyntax, SmallParsers.PipelineId)
                .WithTrackingName(TrackingNames.PipelineIds)
                .Collect();
            context.RegisterSourceOutput(pipelineIds, static (spc, ids) => ReportDuplicatePipelineIds(spc, ids));

            var contracts = context.SyntaxProvider
                .ForAttributeWithMetadataName(KnownNames.StateContractAttribute, static (node, _) => node is TypeDeclarationSyntax, ContractParser.Parse)
                .WithTrackingName(TrackingNames.ContractParse);

            var contractSpecs = contracts.Select(static (r, _) => r.Spec).WithTrackingName(TrackingNames.ContractSpecs);
            context.RegisterSourceOutput(contractSpecs, static (spc, spec) =>
            {
                if (spec is null) return;
                Emit(spc, spec.Target.Type.Name, () => (ContractEmitter.HintName(spec), ContractEmitter.Emit(spec)));
            });

            var contractDiagnostics = contracts.Select(static (r, _) => r.Diagnostics).WithTrackingName(TrackingNames.ContractDiagnostics);
            context.RegisterSourceOutput(contractDiagnostics, static (spc, diagnostics) => Report(spc, diagnostics));

            // Checkpoint compatibility: the committed lock file against this build. Locations come from their
            // own step so that editing code never invalidates the models that generated source depends on.
            var locations = context.SyntaxProvider
                .ForAttributeWithMetadataName(KnownNames.PipelineAttribute, static (node, _) => node is ClassDeclarationSyntax, LockFileParser.Locations)
                .WithTrackingName(TrackingNames.PipelineLocations)
                .Collect();
            var lockFile = context.AdditionalTextsProvider
                .Where(static f => string.Equals(System.IO.Path.GetFileName(f.Path), LockFileParser.FileName, StringComparison.OrdinalIgnoreCase))
                .Select(LockFileParser.Parse)
                .WithTrackingName(TrackingNames.LockFile)
                .Collect();
            context.RegisterSourceOutput(pipelineSpecs.Collect().Combine(locations).Combine(lockFile), static (spc, input) =>
            {
                var ((specs, locs), locks) = input;
                foreach (var file in locks)
                {
                    if (file is null) continue;
                    foreach (var d in file.Diagnostics) spc.ReportDiagnostic(d.ToDiagnostic());
                    foreach (var spec in specs)
                    {
                        if (spec is null || spec.HasErrors) continue;
                        var locked = file.Pipelines.FirstOrDefault(p => p.PipelineId == spec.PipelineId);
                        if (locked is null) continue;
                        var where = locs.FirstOrDefault(l => l?.PipelineId == spec.PipelineId);
                        foreach (var d in LockCompatibility.Check(spec, locked, where)) spc.ReportDiagnostic(d.ToDiagnostic());
                    }
                }
            });

            // An operator attribute outside a pipeline class: one attribute-indexed provider per operator kind,
            // so that the compiler's attribute index, not a semantic model per attributed method, finds them.
            foreach (string attribute in KnownNames.OperatorAttributes)
            {
                var orphans = context.SyntaxProvider
                    .ForAttributeWithMetadataName(attribute, static (node, _) => node is MethodDeclarationSyntax, SmallParsers.OrphanOperator)
                    .Where(static d => d is not null)
                    .WithTrackingName(TrackingNames.OrphanOperators);
                context.RegisterSourceOutput(orphans, static (spc, diagnostic) => spc.ReportDiagnostic(diagnostic!.ToDiagnostic()));
            }
        }

        private static void Emit(SourceProductionContext context, string typeName, Func<(string HintName, string Source)> emit)
        {
            try
            {
                var (hintName, source) = emit();
                context.AddSource(hintName, source);
            }
            catch (Exception e)
            {
                // A generator crash must surface as a diagnostic, never as a broken build with no explanation.
                context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.GeneratorFailure, Location.None, typeName, e.GetType().Name + ": " + e.Message));
            }
        }

        private static void Report(SourceProductionContext context, EquatableArray<DiagnosticInfo> diagnostics)
        {
            foreach (var d in diagnostics) context.ReportDiagnostic(d.ToDiagnostic());
        }

        private static void ReportDuplicatePipelineIds(SourceProductionContext context, ImmutableArray<PipelineIdInfo?> ids)
        {
            foreach (var group in ids.Where(i => i is not null).GroupBy(i => i!.PipelineId, StringComparer.Ordinal))
            {
                var ordered = group.OrderBy(i => i!.TypeName, StringComparer.Ordinal).ToList();
                for (int i = 1; i < ordered.Count; i++)
                {
                    var info = DiagnosticInfo.Create(DiagnosticDescriptors.DuplicatePipelineId, ordered[i]!.Location, group.Key, ordered[0]!.TypeName, ordered[i]!.TypeName);
                    context.ReportDiagnostic(info.ToDiagnostic());
                }
            }
        }
    }
}
