using System.Reflection;
using Microsoft.CodeAnalysis;

namespace PipelineDsl.Generator.Tests;

/// <summary>
/// The models that flow through the incremental pipeline hold plain values only. A symbol, syntax node,
/// location or compilation in a model would defeat caching and keep whole compilations alive.
/// </summary>
public class ModelTests
{
    private static readonly Type[] Forbidden = { typeof(ISymbol), typeof(SyntaxNode), typeof(SyntaxTree), typeof(Location), typeof(Compilation), typeof(SemanticModel), typeof(AttributeData) };

    private static IEnumerable<Type> ModelTypes()
    {
        var assembly = typeof(PipelineGenerator).Assembly;
        return assembly.GetTypes().Where(t =>
            t.Namespace == "PipelineDsl.Generator.Model" && !t.IsInterface && !t.IsAbstract && !t.Name.StartsWith('<') && t.Name != "IsExternalInit" && t.Name != "EquatableArray"
            || t.Name is "PipelineParseResult" or "ContractParseResult" or "DiagnosticInfo" or "LocationInfo" or "PipelineIdInfo");
    }

    [Fact]
    public void Models_hold_no_symbols_syntax_locations_or_compilations()
    {
        var types = ModelTypes().ToList();
        Assert.Contains(types, t => t.Name == "PipelineSpec");
        Assert.Contains(types, t => t.Name == "DiagnosticInfo");
        foreach (var type in types)
        {
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
                AssertAllowed(field.FieldType, $"{type.Name}.{field.Name}");
        }
    }

    [Fact]
    public void Models_have_value_equality()
    {
        foreach (var type in ModelTypes().Where(t => !t.IsEnum && !t.IsGenericTypeDefinition))
        {
            Assert.True(typeof(IEquatable<>).MakeGenericType(type).IsAssignableFrom(type), $"{type.Name} must implement IEquatable<{type.Name}>");
        }
    }

    private static void AssertAllowed(Type type, string where)
    {
        foreach (var forbidden in Forbidden)
            Assert.False(forbidden.IsAssignableFrom(type), $"{where} is a {type.Name}, which must not appear in a model");
        Assert.False(type == typeof(object), $"{where} is typed object, which could hide anything");
        if (type.IsArray) Assert.Fail($"{where} is an array, which has reference equality: use EquatableArray<T>");
        if (type.IsGenericType)
        {
            var definition = type.GetGenericTypeDefinition();
            Assert.True(definition.Name.StartsWith("EquatableArray", StringComparison.Ordinal) || definition == typeof(Nullable<>) || definition == typeof(System.Collections.Immutable.ImmutableArray<>),
                $"{where} is a {type.Name}, which has no value equality");
            foreach (var argument in type.GetGenericArguments()) AssertAllowed(argument, where);
        }
    }
}
