using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Parsing
{
    internal static class SyntaxHelpers
    {
        /// <summary>The location of a named (or, failing that, positional) attribute argument, else of the attribute.</summary>
        public static Location? ArgumentLocation(AttributeData attribute, string? name, int position, CancellationToken ct)
        {
            if (attribute.ApplicationSyntaxReference?.GetSyntax(ct) is not AttributeSyntax syntax) return null;
            var args = syntax.ArgumentList?.Arguments ?? default;
            if (name is not null)
            {
                foreach (var arg in args)
                {
                    if (arg.NameEquals?.Name.Identifier.ValueText == name || arg.NameColon?.Name.Identifier.ValueText == name)
                        return arg.GetLocation();
                }
            }

            if (position >= 0)
            {
                var positional = args.Where(a => a.NameEquals is null).ToList();
                if (position < positional.Count) return positional[position].GetLocation();
            }

            return syntax.GetLocation();
        }

        /// <summary>The location of a symbol's name in its first declaration.</summary>
        public static Location? NameLocation(ISymbol symbol) => symbol.Locations.FirstOrDefault(l => l.IsInSource);

        /// <summary>True when every declaration of the type has the 'partial' modifier.</summary>
        public static bool IsPartial(INamedTypeSymbol type, CancellationToken ct)
        {
            if (type.DeclaringSyntaxReferences.Length == 0) return false;
            foreach (var reference in type.DeclaringSyntaxReferences)
            {
                if (reference.GetSyntax(ct) is not TypeDeclarationSyntax decl || !decl.Modifiers.Any(SyntaxKind.PartialKeyword)) return false;
            }

            return true;
        }

        /// <summary>Where generated code for <paramref name="type"/> goes: namespace, enclosing types and the type.</summary>
        public static TargetTypeSpec Target(INamedTypeSymbol type, CancellationToken ct)
        {
            var chain = new List<TypeDeclarationSpec>();
            for (var t = type.ContainingType; t is not null; t = t.ContainingType) chain.Insert(0, Declaration(t, ct));
            string? ns = type.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : null;
            return new TargetTypeSpec(ns, chain.ToEquatableArray(), Declaration(type, ct), TypeNames.ForCode(type));
        }

        private static TypeDeclarationSpec Declaration(INamedTypeSymbol type, CancellationToken ct)
        {
            string keyword = type.DeclaringSyntaxReferences.Select(r => r.GetSyntax(ct)).OfType<TypeDeclarationSyntax>().FirstOrDefault() switch
            {
                RecordDeclarationSyntax r when r.ClassOrStructKeyword.IsKind(SyntaxKind.StructKeyword) => "record struct",
                RecordDeclarationSyntax => "record",
                StructDeclarationSyntax => "struct",
                InterfaceDeclarationSyntax => "interface",
                _ => "class",
            };
            return new TypeDeclarationSpec(keyword, type.Name);
        }

        public static string Accessibility(Microsoft.CodeAnalysis.Accessibility accessibility) => accessibility switch
        {
            Microsoft.CodeAnalysis.Accessibility.Public => "public",
            Microsoft.CodeAnalysis.Accessibility.Internal => "internal",
            Microsoft.CodeAnalysis.Accessibility.Private => "private",
            Microsoft.CodeAnalysis.Accessibility.Protected => "protected",
            Microsoft.CodeAnalysis.Accessibility.ProtectedOrInternal => "protected internal",
            Microsoft.CodeAnalysis.Accessibility.ProtectedAndInternal => "private protected",
            _ => "private",
        };
    }
}
