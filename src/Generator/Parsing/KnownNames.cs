using Microsoft.CodeAnalysis;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>Metadata names of the DSL types the generator recognises; it never references the DSL assembly.</summary>
    internal static class KnownNames
    {
        public const string PipelineAttribute = "PipelineDsl.PipelineAttribute";
        public const string StateContractAttribute = "PipelineDsl.StateContractAttribute";
        public const string FieldAttribute = "PipelineDsl.FieldAttribute";
        public const string OperatorAttribute = "PipelineDsl.OperatorAttribute";
        public const string Source = "PipelineDsl.Source`1";
        public const string Sink = "PipelineDsl.Sink`1";
        public const string Stream = "PipelineDsl.Stream`1";
        public const string KeyedState = "PipelineDsl.KeyedState`1";
        public const string BatchTime = "PipelineDsl.BatchTime";
        public const string Windowed = "PipelineDsl.Windowed`2";
        public const string EventWindow = "PipelineDsl.EventWindow`2";

        /// <summary>The metadata names of every operator attribute, used to find orphaned ones.</summary>
        public static readonly string[] OperatorAttributes =
        {
            "PipelineDsl.SourceAttribute", "PipelineDsl.SinkAttribute", "PipelineDsl.ForEachBatchAttribute",
            "PipelineDsl.MapAttribute", "PipelineDsl.FlatMapAttribute", "PipelineDsl.FilterAttribute",
            "PipelineDsl.ReduceAttribute", "PipelineDsl.UpdateStateAttribute", "PipelineDsl.WindowAttribute",
            "PipelineDsl.UnionAttribute", "PipelineDsl.JoinAttribute", "PipelineDsl.WatermarkAttribute",
            "PipelineDsl.EventTimeWindowAttribute", "PipelineDsl.SessionWindowAttribute", "PipelineDsl.StreamJoinAttribute",
        };

        public static bool Is(ITypeSymbol? type, string metadataName) =>
            type is INamedTypeSymbol named && MetadataName(named.OriginalDefinition) == metadataName;

        public static bool IsOperatorAttribute(INamedTypeSymbol? attributeClass)
        {
            for (var t = attributeClass; t is not null; t = t.BaseType)
            {
                if (MetadataName(t) == OperatorAttribute) return true;
            }

            return false;
        }

        public static bool HasAttribute(ISymbol symbol, string metadataName)
        {
            foreach (var a in symbol.GetAttributes())
            {
                if (a.AttributeClass is not null && MetadataName(a.AttributeClass) == metadataName) return true;
            }

            return false;
        }

        public static string MetadataName(INamedTypeSymbol type)
        {
            var ns = type.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() + "." : "";
            return type.ContainingType is null ? ns + type.MetadataName : MetadataName(type.ContainingType) + "+" + type.MetadataName;
        }
    }

    /// <summary>The two spellings of a type the generator uses.</summary>
    internal static class TypeNames
    {
        /// <summary>global::-qualified, for generated code.</summary>
        public static readonly SymbolDisplayFormat Code = SymbolDisplayFormat.FullyQualifiedFormat.WithMiscellaneousOptions(
            SymbolDisplayMiscellaneousOptions.UseSpecialTypes |
            SymbolDisplayMiscellaneousOptions.EscapeKeywordIdentifiers |
            SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

        /// <summary>Namespace-qualified without global:: or nullable annotations, for the manifest.</summary>
        public static readonly SymbolDisplayFormat Manifest = new(
            globalNamespaceStyle: SymbolDisplayGlobalNamespaceStyle.Omitted,
            typeQualificationStyle: SymbolDisplayTypeQualificationStyle.NameAndContainingTypesAndNamespaces,
            genericsOptions: SymbolDisplayGenericsOptions.IncludeTypeParameters,
            miscellaneousOptions: SymbolDisplayMiscellaneousOptions.UseSpecialTypes);

        public static string ForCode(ITypeSymbol type) => type.ToDisplayString(Code);

        public static string ForManifest(ITypeSymbol type) =>
            type.WithNullableAnnotation(NullableAnnotation.NotAnnotated).ToDisplayString(Manifest);
    }
}
