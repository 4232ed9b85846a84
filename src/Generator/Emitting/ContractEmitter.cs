using System.Linq;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Emitting
{
    /// <summary>
    /// Emits the MessagePack formatter of a state contract: a map from field key to value. Readers skip
    /// keys they do not know and leave missing fields at their defaults, which is what makes adding,
    /// removing and renaming fields safe.
    /// </summary>
    internal static class ContractEmitter
    {
        private const string Ns = "global::PipelineDsl.Serialization.";

        public static string HintName(ContractSpec spec) => spec.Target.HintPrefix + ".StateContract.g.cs";

        public static string Emit(ContractSpec spec)
        {
            var w = new SourceWriter();
            var formatters = new FormatterExpressions();
            string type = spec.Target.FullyQualifiedName;
            int depth = TypeNesting.Open(w, spec.Target);

            w.Line($"/// <summary>The MessagePack formatter of this state contract (schema <c>{Escape(spec.Schema)}</c>, fingerprint <c>{spec.Fingerprint}</c>).</summary>");
            w.Line(GeneratedCode.Attribute);
            w.Line($"public static {Ns}IMessagePackFormatter<{type}> MessagePackFormatter {{ get; }} = new PipelineDslFormatter();");
            w.Line();
            w.Line(GeneratedCode.Attribute);
            w.Open($"private sealed class PipelineDslFormatter : {Ns}IMessagePackFormatter<{type}>");
            foreach (var f in spec.Fields)
                w.Line($"private static readonly {Ns}IMessagePackFormatter<{f.Shape.TypeName}> Field{f.Key} = {formatters.For(f.Shape)};");
            if (spec.Fields.Count > 0) w.Line();

            // Serialize
            w.Open($"public void Serialize({Ns}MessagePackWriter writer, {type} value)");
            if (!spec.IsValueType)
            {
                w.Open("if (value is null)");
                w.Line("writer.WriteNil();");
                w.Line("return;");
                w.Close();
                w.Line();
            }

            w.Line($"writer.WriteMapHeader({spec.Fields.Count});");
            foreach (var f in spec.Fields)
            {
                w.Line($"writer.Write({f.Key}L);");
                w.Line($"Field{f.Key}.Serialize(writer, value.{f.MemberName});");
            }

            w.Close();
            w.Line();

            // Deserialize
            w.Open($"public {type} Deserialize(ref {Ns}MessagePackReader reader)");
            if (!spec.IsValueType)
            {
                w.Line("if (reader.TryReadNil()) return null;");
                w.Line();
            }

            foreach (var f in spec.Fields)
            {
                w.Line($"{f.Shape.TypeName} field{f.Key} = default;");
                if (f.Assignment == FieldAssignment.Settable) w.Line($"bool has{f.Key} = false;");
            }

            w.Line("int count = reader.ReadMapHeader();");
            w.Line("reader.EnterNested();");
            w.Open("for (int i = 0; i < count; i++)");
            w.Open("switch (reader.ReadInt64())");
            foreach (var f in spec.Fields)
            {
                w.Line($"case {f.Key}:");
                w.Line($"    field{f.Key} = Field{f.Key}.Deserialize(ref reader);");
                if (f.Assignment == FieldAssignment.Settable) w.Line($"    has{f.Key} = true;");
                w.Line("    break;");
            }

            w.Line("default:");
            w.Line("    // A field this build does not know: written by a newer build, or removed since. Skip it.");
            w.Line("    reader.Skip();");
            w.Line("    break;");
            w.Close();
            w.Close();
            w.Line();
            w.Line("reader.LeaveNested();");
            var ctorArgs = spec.Fields.Where(f => f.Assignment == FieldAssignment.ConstructorParameter).OrderBy(f => f.ConstructorPosition).Select(f => $"field{f.Key}");
            var inits = spec.Fields.Where(f => f.Assignment == FieldAssignment.InitOnly).Select(f => $"{f.MemberName} = field{f.Key}").ToList();
            var settable = spec.Fields.Where(f => f.Assignment == FieldAssignment.Settable).ToList();
            string construction = $"new {type}({string.Join(", ", ctorArgs)})";
            if (inits.Count == 0)
            {
                w.Line($"var result = {construction};");
            }
            else
            {
                w.Line($"var result = {construction}");
                w.Line("{");
                foreach (var init in inits) w.Line("    " + init + ",");
                w.Line("};");
            }

            if (settable.Count > 0)
            {
                w.Line();
                w.Line("// Only fields present in the data are assigned: a field added since the data was written keeps its initializer.");
            }

            foreach (var f in settable) w.Line($"if (has{f.Key}) result.{f.MemberName} = field{f.Key};");
            w.Line("return result;");
            w.Close();
            formatters.WriteEnumFormatters(w);
            w.Close();
            TypeNesting.Close(w, depth);
            return w.ToString();
        }

        private static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
    }

    /// <summary>Opens and closes the namespace and the (partial) type declarations that enclose generated members.</summary>
    internal static class TypeNesting
    {
        public static int Open(SourceWriter w, TargetTypeSpec target)
        {
            w.Line("// <auto-generated/>");
            w.Line("// Generated by PipelineDsl.Generator. Do not edit: change the annotated source instead.");
            w.Line("#nullable enable annotations");
            w.Line("#nullable disable warnings");
            // The wiring calls the user's methods and types, which may be [Obsolete]: their build must not fail on our calls.
            w.Line("#pragma warning disable CS0612, CS0618");
            w.Line();
            int depth = 0;
            if (target.Namespace is not null)
            {
                w.Open("namespace " + target.Namespace);
                depth++;
            }

            foreach (var t in target.ContainingTypes)
            {
                w.Open($"partial {t.Keyword} {t.Name}");
                depth++;
            }

            w.Open($"partial {target.Type.Keyword} {target.Type.Name}");
            return depth + 1;
        }

        public static void Close(SourceWriter w, int depth)
        {
            for (int i = 0; i < depth; i++) w.Close();
        }
    }
}
