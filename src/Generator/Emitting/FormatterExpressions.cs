using System.Collections.Generic;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Emitting
{
    /// <summary>
    /// Builds the C# expression that yields a formatter for a type shape. Enums get a small generated
    /// formatter class each (collected here and written by the caller), so no reflection is needed.
    /// </summary>
    internal sealed class FormatterExpressions
    {
        private const string Ns = "global::PipelineDsl.Serialization.";
        private const string CompilerServices = "global::PipelineDsl.CompilerServices.";
        private readonly SortedDictionary<string, TypeShapeSpec> _enums = new(System.StringComparer.Ordinal);

        public string For(TypeShapeSpec shape) => shape.Kind switch
        {
            ShapeKind.Primitive => CompilerServices + "MessagePackFormatters." + shape.Formatter,
            ShapeKind.Enum => EnumFormatter(shape) + ".Instance",
            ShapeKind.Nullable => $"new {CompilerServices}NullableFormatter<{shape.Arguments[0].TypeName}>({For(shape.Arguments[0])})",
            ShapeKind.Array => $"new {CompilerServices}ArrayFormatter<{shape.Arguments[0].TypeName}>({For(shape.Arguments[0])})",
            ShapeKind.List => $"new {CompilerServices}ListFormatter<{shape.Arguments[0].TypeName}>({For(shape.Arguments[0])})",
            ShapeKind.Dictionary => $"new {CompilerServices}DictionaryFormatter<{shape.Arguments[0].TypeName}, {shape.Arguments[1].TypeName}>({For(shape.Arguments[0])}, {For(shape.Arguments[1])})",
            _ => shape.TypeName + ".MessagePackFormatter",
        };

        /// <summary>Writes one nested formatter class per enum used so far.</summary>
        public void WriteEnumFormatters(SourceWriter w)
        {
            foreach (var pair in _enums)
            {
                var shape = pair.Value;
                bool unsigned = shape.Formatter is "Byte" or "UInt16" or "UInt32" or "UInt64";
                w.Line();
                w.Line(GeneratedCode.Attribute);
                w.Open($"private sealed class {pair.Key} : {Ns}IMessagePackFormatter<{shape.TypeName}>");
                w.Line($"internal static readonly {pair.Key} Instance = new {pair.Key}();");
                w.Line();
                w.Line($"public void Serialize({Ns}MessagePackWriter writer, {shape.TypeName} value) => writer.Write(({(unsigned ? "ulong" : "long")})value);");
                w.Line();
                w.Line($"public {shape.TypeName} Deserialize(ref {Ns}MessagePackReader reader) => ({shape.TypeName})reader.{(unsigned ? "ReadUInt64" : "ReadInt64")}();");
                w.Close();
            }
        }

        private string EnumFormatter(TypeShapeSpec shape)
        {
            string name = "PipelineDslEnumFormatter_" + SourceWriter.Identifier(shape.TypeName.Replace("global::", ""));
            _enums[name] = shape;
            return name;
        }
    }
}
