using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using PipelineDsl.Generator.Diagnostics;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>Turns a [StateContract] type into a <see cref="ContractSpec"/> and its diagnostics.</summary>
    internal static class ContractParser
    {
        public static ContractParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken ct)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            try
            {
                return ParseCore(type, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return new ContractParseResult(null, new[] { DiagnosticInfo.Create(DiagnosticDescriptors.GeneratorFailure, SyntaxHelpers.NameLocation(type), type.Name, e.GetType().Name + ": " + e.Message) }.ToEquatableArray());
            }
        }

        private static ContractParseResult ParseCore(INamedTypeSymbol type, CancellationToken ct)
        {
            var diagnostics = new List<DiagnosticInfo>();
            string name = type.Name;
            bool partial = true;
            for (var t = type; t is not null; t = t.ContainingType) partial &= SyntaxHelpers.IsPartial(t, ct);
            if (!partial) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ContractNotPartial, SyntaxHelpers.NameLocation(type), name));

            bool generic = false;
            for (var t = type; t is not null; t = t.ContainingType) generic |= t.IsGenericType;
            if (generic) diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotConstructible, SyntaxHelpers.NameLocation(type), name, "it (or a type containing it) is generic"));

            var keyed = ContractMembers.Keyed(type).ToList();
            var fields = new List<(KeyedMember Member, TypeShapeSpec Shape)>();
            var seen = new Dictionary<int, KeyedMember>();
            foreach (var member in keyed)
            {
                var keyLocation = SyntaxHelpers.ArgumentLocation(member.Attribute, null, 0, ct);
                if (member.Key < 0)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NegativeFieldKey, keyLocation, name, member.Member.Name, member.Key.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    continue;
                }

                if (seen.TryGetValue(member.Key, out var first))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateFieldKey, keyLocation, name, member.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), first.Member.Name, member.Member.Name));
                    continue;
                }

                seen.Add(member.Key, member);
                var shape = ShapeResolver.Resolve(member.Type);
                if (shape is null)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedFieldType, SyntaxHelpers.NameLocation(member.Member), name, member.Member.Name, TypeNames.ForManifest(member.Type)));
                    continue;
                }

                fields.Add((member, shape));
            }

            // Data members without a key are silently lost on recovery; say so.
            foreach (var f in type.GetMembers().OfType<IFieldSymbol>())
            {
                if (f.IsStatic || f.IsConst) continue;
                ISymbol owner = f.AssociatedSymbol ?? f;
                if (owner is IPropertySymbol or IFieldSymbol && keyed.All(k => !SymbolEqualityComparer.Default.Equals(k.Member, owner)))
                {
                    if (owner.IsImplicitlyDeclared) continue;
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnkeyedMember, SyntaxHelpers.NameLocation(owner), name, owner.Name));
                }
            }

            if (diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == DiagnosticSeverity.Error))
                return new ContractParseResult(null, diagnostics.ToEquatableArray());

            var plan = PlanConstruction(type, fields.Select(f => f.Member).ToList(), out string? failure);
            if (plan is null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotConstructible, SyntaxHelpers.NameLocation(type), name, failure!));
                return new ContractParseResult(null, diagnostics.ToEquatableArray());
            }

            var specs = fields
                .Select(f =>
                {
                    int position = plan.Value.Parameters.FindIndex(p => string.Equals(p, f.Member.Member.Name, StringComparison.OrdinalIgnoreCase));
                    var assignment = position >= 0 ? FieldAssignment.ConstructorParameter
                        : f.Member.Member is IPropertySymbol { SetMethod.IsInitOnly: true } ? FieldAssignment.InitOnly
                        : FieldAssignment.Settable;
                    return new FieldSpec(f.Member.Key, f.Member.Member.Name, f.Shape, assignment, position);
                })
                .OrderBy(f => f.Key)
                .ToEquatableArray();
            string schema = ShapeResolver.ContractSchema(type);
            var spec = new ContractSpec(SyntaxHelpers.Target(type, ct), type.IsValueType, specs, plan.Value.Parameters.Count, schema, ShapeResolver.Fingerprint(schema));
            return new ContractParseResult(spec, diagnostics.ToEquatableArray());
        }

        /// <summary>
        /// Chooses how the generated formatter rebuilds a value: a parameterless constructor plus
        /// initializers, or a constructor whose parameters all match keyed members by name.
        /// </summary>
        private static (List<string> Parameters, bool Unused)? PlanConstruction(INamedTypeSymbol type, List<KeyedMember> members, out string? failure)
        {
            failure = null;
            var ctors = type.InstanceConstructors
                .Where(c => !(c.Parameters.Length == 1 && SymbolEqualityComparer.Default.Equals(c.Parameters[0].Type, type)))
                .ToList();
            bool hasParameterless = type.IsValueType || ctors.Any(c => c.Parameters.Length == 0);
            var unassignable = members.Where(m => !Assignable(m.Member)).Select(m => m.Member.Name).ToList();
            if (hasParameterless && unassignable.Count == 0) return (new List<string>(), false);

            foreach (var ctor in ctors.Where(c => c.Parameters.Length > 0).OrderByDescending(c => c.Parameters.Length))
            {
                var names = new List<string>();
                bool ok = true;
                foreach (var p in ctor.Parameters)
                {
                    var match = members.FirstOrDefault(m => string.Equals(m.Member.Name, p.Name, StringComparison.OrdinalIgnoreCase));
                    if (match.Member is null || !SymbolEqualityComparer.Default.Equals(match.Type.WithNullableAnnotation(NullableAnnotation.None), p.Type.WithNullableAnnotation(NullableAnnotation.None)))
                    {
                        ok = false;
                        break;
                    }

                    names.Add(match.Member.Name);
                }

                if (ok && members.All(m => names.Contains(m.Member.Name) || Assignable(m.Member))) return (names, false);
            }

            failure = unassignable.Count > 0
                ? "the members " + string.Join(", ", unassignable.Select(n => "'" + n + "'")) + " have no setter and no constructor parameter of the same name"
                : "it has no parameterless constructor and no constructor whose parameters all match keyed members";
            return null;
        }

        private static bool Assignable(ISymbol member) => member switch
        {
            IPropertySymbol p => p.SetMethod is not null,
            IFieldSymbol f => !f.IsReadOnly,
            _ => false,
        };
    }
}
