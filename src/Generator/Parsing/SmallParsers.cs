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

        /// <summary>
        /// An operator attribute (the one <paramref name="context"/> found) on a method of a type that is not a
        /// pipeline. Reported once per method: only for the method's first operator attribute.
        /// </summary>
        public static DiagnosticInfo? OrphanOperator(GeneratorAttributeSyntaxContext context, CancellationToken ct)
        {
            if (context.TargetSymbol is not IMethodSymbol method) return null;
            var type = method.ContainingType;
            if (type is null || KnownNames.HasAttribute(type, KnownNames.PipelineAttribute)) return null;
            var first = method.GetAttributes().FirstOrDefault(a => KnownNames.IsOperatorAttribute(a.AttributeClass));
            if (first is null || !SymbolEqualityComparer.Default.Equals(first.AttributeClass, context.Attributes[0].AttributeClass)) return null;
            return DiagnosticInfo.Create(DiagnosticDescriptors.OutsidePipeline, SyntaxHelpers.NameLocation(method), method.Name, type.Name);
        }
    }
}
