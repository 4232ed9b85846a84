using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using Microsoft.CodeAnalysis;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>
    /// Decides how a type crosses a checkpoint and computes its canonical schema: field keys and field
    /// types only, never member or type names, so that renames keep the schema fingerprint.
    /// </summary>
    internal static class ShapeResolver
    {
        /// <summary>The shape of <paramref name="type"/>, or null when it cannot be checkpointed.</summary>
        public static TypeShapeSpec? Resolve(ITypeSymbol type) => Resolve(type, new List<ITypeSymbol>());

        private static TypeShapeSpec? Resolve(ITypeSymbol type, List<ITypeSymbol> visiting)
        {
            // Nullable reference annotations do not change the encoding; generated code disables nullable warnings.
            string code = TypeNames.ForCode(type.WithNullableAnnotation(NullableAnnotation.NotAnnotated));
            var primitive = Primitive(type);
            if (primitive is not null) return new TypeShapeSpec(ShapeKind.Primitive, code, primitive.Value.Schema, primitive.Value.Formatter, EquatableArray<TypeShapeSpec>.Empty);

            if (type is INamedTypeSymbol { TypeKind: TypeKind.Enum, EnumUnderlyingType: { } underlying })
            {
                var inner = Primitive(underlying)!.Value;
                return new TypeShapeSpec(ShapeKind.Enum, code, "enum:" + inner.Schema, inner.Formatter, EquatableArray<TypeShapeSpec>.Empty);
            }

            if (type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } nullable)
            {
                var inner = Resolve(nullable.TypeArguments[0], visiting);
                return inner is null ? null : new TypeShapeSpec(ShapeKind.Nullable, code, "nullable<" + inner.Schema + ">", null, new[] { inner }.ToEquatableArray());
            }

            if (type is IArrayTypeSymbol { Rank: 1 } array)
            {
                var inner = Resolve(array.ElementType, visiting);
                return inner is null ? null : new TypeShapeSpec(ShapeKind.Array, code, "array<" + inner.Schema + ">", null, new[] { inner }.ToEquatableArray());
            }

            if (type is INamedTypeSymbol named)
            {
                string metadata = KnownNames.MetadataName(named.OriginalDefinition);
                if (metadata == "System.Collections.Generic.List`1")
                {
                    var inner = Resolve(named.TypeArguments[0], visiting);
                    // A List and an array share one encoding, so they share a schema: switching is safe.
                    return inner is null ? null : new TypeShapeSpec(ShapeKind.List, code, "array<" + inner.Schema + ">", null, new[] { inner }.ToEquatableArray());
                }

                if (metadata == "System.Collections.Generic.Dictionary`2")
                {
                    var key = Resolve(named.TypeArguments[0], visiting);
                    var value = Resolve(named.TypeArguments[1], visiting);
                    return key is null || value is null
                        ? null
                        : new TypeShapeSpec(ShapeKind.Dictionary, code, "map<" + key.Schema + "," + value.Schema + ">", null, new[] { key, value }.ToEquatableArray());
                }

                if (KnownNames.HasAttribute(named, KnownNames.StateContractAttribute) && !named.IsGenericType)
                {
                    string schema = ContractSchema(named, visiting);
                    return new TypeShapeSpec(ShapeKind.Contract, code, schema, null, EquatableArray<TypeShapeSpec>.Empty);
                }
            }

            return null;
        }

        /// <summary>The canonical schema of a state contract: <c>{key:schema,...}</c> ordered by key.</summary>
        public static string ContractSchema(INamedTypeSymbol contract) => ContractSchema(contract, new List<ITypeSymbol>());

        private static string ContractSchema(INamedTypeSymbol contract, List<ITypeSymbol> visiting)
        {
            if (visiting.Any(v => SymbolEqualityComparer.Default.Equals(v, contract))) return "@recursive";
            visiting.Add(contract);
            var parts = new List<string>();
            foreach (var field in ContractMembers.Keyed(contract).OrderBy(f => f.Key))
            {
                var shape = Resolve(field.Type, visiting);
                parts.Add(field.Key.ToString(System.Globalization.CultureInfo.InvariantCulture) + ":" + (shape?.Schema ?? "?"));
            }

            visiting.RemoveAt(visiting.Count - 1);
            return "{" + string.Join(",", parts) + "}";
        }

        /// <summary>First 16 hex digits of the SHA-256 of a canonical schema.</summary>
        public static string Fingerprint(string schema)
        {
            using var sha = SHA256.Create();
            byte[] hash = sha.ComputeHash(Encoding.UTF8.GetBytes(schema));
            var sb = new StringBuilder(16);
            for (int i = 0; i < 8; i++) sb.Append(hash[i].ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            return sb.ToString();
        }

        private static (string Schema, string Formatter)? Primitive(ITypeSymbol type)
        {
            switch (type.SpecialType)
            {
                case SpecialType.System_Boolean: return ("bool", "Boolean");
                case SpecialType.System_Byte: return ("uint8", "Byte");
                case SpecialType.System_SByte: return ("int8", "SByte");
                case SpecialType.System_Int16: return ("int16", "Int16");
                case SpecialType.System_UInt16: return ("uint16", "UInt16");
                case SpecialType.System_Int32: return ("int32", "Int32");
                case SpecialType.System_UInt32: return ("uint32", "UInt32");
                case SpecialType.System_Int64: return ("int64", "Int64");
                case SpecialType.System_UInt64: return ("uint64", "UInt64");
                case SpecialType.System_Single: return ("float32", "Single");
                case SpecialType.System_Double: return ("float64", "Double");
                case SpecialType.System_Decimal: return ("decimal", "Decimal");
                case SpecialType.System_Char: return ("char", "Char");
                case SpecialType.System_String: return ("string", "String");
                case SpecialType.System_DateTime: return ("timestamp", "DateTime");
            }

            if (type is IArrayTypeSymbol { Rank: 1, ElementType.SpecialType: SpecialType.System_Byte }) return ("binary", "Binary");
            if (type is INamedTypeSymbol named)
            {
                switch (KnownNames.MetadataName(named))
                {
                    case "System.DateTimeOffset": return ("datetimeoffset", "DateTimeOffset");
                    case "System.TimeSpan": return ("timespan", "TimeSpan");
                    case "System.Guid": return ("guid", "Guid");
                }
            }

            return null;
        }
    }

    /// <summary>A member of a state contract that carries a [Field] key.</summary>
    internal readonly struct KeyedMember
    {
        public KeyedMember(int key, ISymbol member, ITypeSymbol type, AttributeData attribute)
        {
            Key = key;
            Member = member;
            Type = type;
            Attribute = attribute;
        }

        public int Key { get; }
        public ISymbol Member { get; }
        public ITypeSymbol Type { get; }
        public AttributeData Attribute { get; }
    }

    internal static class ContractMembers
    {
        /// <summary>
        /// The keyed members of a contract, in declaration order. A positional record's key may sit on
        /// the primary-constructor parameter instead of the property.
        /// </summary>
        public static IEnumerable<KeyedMember> Keyed(INamedTypeSymbol contract)
        {
            foreach (var member in contract.GetMembers())
            {
                if (member.IsStatic || member.IsImplicitlyDeclared) continue;
                ITypeSymbol? type = member switch
                {
                    IPropertySymbol { IsIndexer: false } p => p.Type,
                    IFieldSymbol { IsConst: false } f => f.Type,
                    _ => null,
                };
                if (type is null) continue;
                var attribute = FieldAttribute(member) ?? (contract.IsRecord ? ParameterFieldAttribute(contract, member.Name) : null);
                if (attribute is null) continue;
                int key = attribute.ConstructorArguments.Length == 1 && attribute.ConstructorArguments[0].Value is int k ? k : 0;
                yield return new KeyedMember(key, member, type, attribute);
            }
        }

        public static AttributeData? FieldAttribute(ISymbol symbol)
        {
            foreach (var a in symbol.GetAttributes())
            {
                if (a.AttributeClass is not null && KnownNames.MetadataName(a.AttributeClass) == KnownNames.FieldAttribute) return a;
            }

            return null;
        }

        private static AttributeData? ParameterFieldAttribute(INamedTypeSymbol record, string name)
        {
            foreach (var ctor in record.InstanceConstructors)
            {
                foreach (var p in ctor.Parameters)
                {
                    if (p.Name == name && FieldAttribute(p) is { } a) return a;
                }
            }

            return null;
        }
    }
}
