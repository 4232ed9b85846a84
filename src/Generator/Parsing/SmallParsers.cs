using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PipelineDsl.Generator.Diagnostics;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>A pipeline's id and where it is declared, to find ids used by two pipelines.</summary>
    internal sealed record PipelineIdInfo(string PipelineId, string TypeName, LocationInfo? Location);

    internal static class SmallParsers
    {
        public static PipelineIdInfo? PipelineId(GeneratorAttributeSyntaxContext context, CancellationToken ct)
        {
            var attribute = context.Attributes[0];
            if (attribute.ConstructorArguments.Length != 1 || attribute.ConstructorArguments[0].Value is not string id || id.Length == 0) return null;
            return new PipelineIdInfo(id, context.TargetSymbol.ToDisplayString(), LocationInfo.From(SyntaxHelpers.ArgumentLocation(attribute, null, 0, ct)));
        }

        public static bool MayBeOperatorMethod(SyntaxNode node, CancellationToken ct) =>
            node is MethodDeclarationSyntax { AttributeLists.Count: > 0 } method
            && method.Parent is TypeDeclarationSyntax type
            && !type.AttributeLists.SelectMany(l => l.Attributes).Any(a => a.Name.ToString() is "Pipeline" or "PipelineAttribute" or "PipelineDsl.Pipeline" or "PipelineDsl.PipelineAttribute" or "global::PipelineDsl.Pipeline" or "global::PipelineDsl.PipelineAttribute");

        /// <summary>An operator attribute on a method of a type that is not a pipeline.</summary>
        public static DiagnosticInfo? OrphanOperator(GeneratorSyntaxContext context, CancellationToken ct)
        {
            if (context.SemanticModel.GetDeclaredSymbol(context.Node, ct) is not IMethodSymbol method) return null;
            if (!method.GetAttributes().Any(a => KnownNames.IsOperatorAttribute(a.AttributeClass))) return null;
            var type = method.ContainingType;
            if (type is null || KnownNames.HasAttribute(type, KnownNames.PipelineAttribute)) return null;
            return DiagnosticInfo.Create(DiagnosticDescriptors.OutsidePipeline, SyntaxHelpers.NameLocation(method), method.Name, type.Name);
        }
    }
}
