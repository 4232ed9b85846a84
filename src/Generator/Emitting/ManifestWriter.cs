using System.Globalization;
using System.Linq;
using System.Text;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Emitting
{
    /// <summary>
    /// Writes a pipeline's manifest as canonical JSON: operators ordered by id, properties in a fixed
    /// order, two-space indentation, '\n' line ends. The same model always yields the same bytes, and an
    /// operator's entry depends only on that operator, so unrelated changes leave it byte-identical.
    /// </summary>
    internal static class ManifestWriter
    {
        public const int FormatVersion = 1;

        public static string Write(PipelineSpec pipeline)
        {
            var sb = new StringBuilder();
            sb.Append("{\n");
            sb.Append("  \"formatVersion\": ").Append(FormatVersion.ToString(CultureInfo.InvariantCulture)).Append(",\n");
            sb.Append("  \"pipeline\": ").Append(Json(pipeline.PipelineId)).Append(",\n");
            if (pipeline.Retired.Count > 0)
                sb.Append("  \"retired\": [").Append(string.Join(", ", pipeline.Retired.Select(Json))).Append("],\n");
            sb.Append("  \"operators\": [");
            for (int i = 0; i < pipeline.Operators.Count; i++)
            {
                sb.Append(i == 0 ? "\n" : ",\n");
                WriteOperator(sb, pipeline.Operators[i]);
            }

            sb.Append(pipeline.Operators.Count == 0 ? "]\n" : "\n  ]\n");
            sb.Append("}\n");
            return sb.ToString();
        }

        private static void WriteOperator(StringBuilder sb, OperatorSpec op)
        {
            const string indent = "      ";
            sb.Append("    {\n");
            sb.Append(indent).Append("\"id\": ").Append(Json(op.Id));
            Property(sb, "version", op.Version.ToString(CultureInfo.InvariantCulture));
            Property(sb, "kind", Json(KindName(op.Kind)));
            var inputs = new StringBuilder("[");
            for (int i = 0; i < op.Inputs.Count; i++) inputs.Append(i == 0 ? "" : ", ").Append(Json(op.Inputs[i]));
            Property(sb, "inputs", inputs.Append(']').ToString());
            if (op.InputTypeDisplay is not null) Property(sb, "inputType", Json(op.InputTypeDisplay));
            if (op.RightTypeDisplay is not null) Property(sb, "rightInputType", Json(op.RightTypeDisplay));
            if (op.OutputTypeDisplay is not null && op.Kind is not (OperatorKindSpec.Sink or OperatorKindSpec.ForEachBatch))
                Property(sb, "outputType", Json(op.OutputTypeDisplay));
            if (op.KeyTypeDisplay is not null) Property(sb, "keyType", Json(op.KeyTypeDisplay));
            if (op.StateTypeDisplay is not null) Property(sb, "stateType", Json(op.StateTypeDisplay));
            foreach (var (name, value, quoted) in StateProperties(op)) Property(sb, name, quoted ? Json(value) : value);

            if (op.Migrations.Count > 0)
                Property(sb, "migratesFrom", "[" + string.Join(", ", op.Migrations.Select(m => m.FromVersion.ToString(CultureInfo.InvariantCulture))) + "]");
            if (op.DiscardsStateFrom.Count > 0)
                Property(sb, "discardsStateFrom", "[" + string.Join(", ", op.DiscardsStateFrom.Select(v => v.ToString(CultureInfo.InvariantCulture))) + "]");
            if (op.StateSchema is { } schema)
            {
                sb.Append(",\n").Append(indent).Append("\"stateSchema\": {\n");
                const string inner = "        ";
                sb.Append(inner).Append("\"fingerprint\": ").Append(Json(schema.Fingerprint)).Append(",\n");
                sb.Append(inner).Append("\"key\": ").Append(Json(schema.KeySchema)).Append(",\n");
                sb.Append(inner).Append("\"value\": ").Append(Json(schema.ValueSchema)).Append(",\n");
                sb.Append(inner).Append("\"fields\": [");
                for (int i = 0; i < schema.Fields.Count; i++)
                {
                    var f = schema.Fields[i];
                    sb.Append(i == 0 ? "\n" : ",\n").Append(inner).Append("  { \"key\": ").Append(f.Key.ToString(CultureInfo.InvariantCulture))
                        .Append(", \"name\": ").Append(Json(f.Name)).Append(", \"type\": ").Append(Json(f.Schema)).Append(" }");
                }

                sb.Append(schema.Fields.Count == 0 ? "]\n" : "\n" + inner + "]\n");
                sb.Append(indent).Append('}');
            }

            sb.Append("\n    }");
        }

        /// <summary>
        /// The properties that say how a stateful operator's state is keyed, laid out and expired, in manifest
        /// order, as (name, canonical text, written as a JSON string?). One list for writing the manifest and for
        /// comparing a build with its lock file (<see cref="PipelineDsl.Graph.OperatorCompatibility"/> has the rules).
        /// </summary>
        public static System.Collections.Generic.IEnumerable<(string Name, string Value, bool Quoted)> StateProperties(OperatorSpec op)
        {
            string L(long v) => v.ToString(CultureInfo.InvariantCulture);
            bool keyedState = op.Kind is OperatorKindSpec.UpdateState or OperatorKindSpec.Window or OperatorKindSpec.EventTimeWindow
                or OperatorKindSpec.SessionWindow or OperatorKindSpec.StreamJoin;
            if (keyedState && op.KeyMember is not null) yield return ("keyMember", op.KeyMember, true);
            if (op.Kind == OperatorKindSpec.StreamJoin && op.RightKeyMember is not null) yield return ("rightKeyMember", op.RightKeyMember, true);
            if (op.Kind == OperatorKindSpec.UpdateState) yield return ("idleTimeoutBatches", L(op.IdleTimeoutBatches), false);
            if (op.Kind == OperatorKindSpec.Window)
            {
                yield return ("lengthBatches", L(op.LengthBatches), false);
                yield return ("slideBatches", L(op.SlideBatches), false);
            }

            if (op.EventTime is not { } time) yield break;
            switch (op.Kind)
            {
                case OperatorKindSpec.Watermark:
                    yield return ("time", time.TimeMember!, true);
                    yield return ("maxOutOfOrdernessMs", L(time.MaxOutOfOrdernessMs), false);
                    break;
                case OperatorKindSpec.EventTimeWindow:
                    yield return ("time", time.TimeMember!, true);
                    yield return ("sizeMs", L(time.SizeMs), false);
                    yield return ("slideMs", L(time.SlideMs), false);
                    break;
                case OperatorKindSpec.SessionWindow:
                    yield return ("time", time.TimeMember!, true);
                    yield return ("gapMs", L(time.GapMs), false);
                    break;
                case OperatorKindSpec.StreamJoin when time.TimeMember is not null:
                    yield return ("leftTime", time.TimeMember, true);
                    if (time.EndTimeMember is not null) yield return ("leftEndTime", time.EndTimeMember, true);
                    yield return ("rightTime", time.RightTimeMember!, true);
                    yield return ("lowerBoundMs", L(time.LowerBoundMs), false);
                    yield return ("upperBoundMs", L(time.UpperBoundMs), false);
                    break;
            }
        }

        private static void Property(StringBuilder sb, string name, string jsonValue) =>
            sb.Append(",\n      \"").Append(name).Append("\": ").Append(jsonValue);

        /// <summary>The manifest spelling of a kind (the vocabulary is <see cref="PipelineDsl.Graph.OperatorKinds"/>, shared with the runtime).</summary>
        public static string KindName(OperatorKindSpec kind) => kind switch
        {
            OperatorKindSpec.Source => PipelineDsl.Graph.OperatorKinds.Source,
            OperatorKindSpec.Map => PipelineDsl.Graph.OperatorKinds.Map,
            OperatorKindSpec.FlatMap => PipelineDsl.Graph.OperatorKinds.FlatMap,
            OperatorKindSpec.Filter => PipelineDsl.Graph.OperatorKinds.Filter,
            OperatorKindSpec.Reduce => PipelineDsl.Graph.OperatorKinds.Reduce,
            OperatorKindSpec.UpdateState => PipelineDsl.Graph.OperatorKinds.UpdateState,
            OperatorKindSpec.Window => PipelineDsl.Graph.OperatorKinds.Window,
            OperatorKindSpec.Union => PipelineDsl.Graph.OperatorKinds.Union,
            OperatorKindSpec.Join => PipelineDsl.Graph.OperatorKinds.Join,
            OperatorKindSpec.Sink => PipelineDsl.Graph.OperatorKinds.Sink,
            OperatorKindSpec.ForEachBatch => PipelineDsl.Graph.OperatorKinds.ForEachBatch,
            OperatorKindSpec.Watermark => PipelineDsl.Graph.OperatorKinds.Watermark,
            OperatorKindSpec.EventTimeWindow => PipelineDsl.Graph.OperatorKinds.EventTimeWindow,
            OperatorKindSpec.SessionWindow => PipelineDsl.Graph.OperatorKinds.SessionWindow,
            OperatorKindSpec.StreamJoin => PipelineDsl.Graph.OperatorKinds.StreamJoin,
            _ => "unknown",
        };

        private static string Json(string value)
        {
            var sb = new StringBuilder(value.Length + 2).Append('"');
            foreach (char c in value)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    default:
                        if (c < ' ') sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }

            return sb.Append('"').ToString();
        }
    }
}
