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
            if (op.Kind == OperatorKindSpec.UpdateState) Property(sb, "idleTimeoutBatches", op.IdleTimeoutBatches.ToString(CultureInfo.InvariantCulture));
            if (op.Kind == OperatorKindSpec.Window)
            {
                Property(sb, "lengthBatches", op.LengthBatches.ToString(CultureInfo.InvariantCulture));
                Property(sb, "slideBatches", op.SlideBatches.ToString(CultureInfo.InvariantCulture));
            }

            if (op.EventTime is { } time)
            {
                string L(long v) => v.ToString(CultureInfo.InvariantCulture);
                switch (op.Kind)
                {
                    case OperatorKindSpec.Watermark:
                        Property(sb, "time", Json(time.TimeMember!));
                        Property(sb, "maxOutOfOrdernessMs", L(time.MaxOutOfOrdernessMs));
                        break;
                    case OperatorKindSpec.EventTimeWindow:
                        Property(sb, "time", Json(time.TimeMember!));
                        Property(sb, "sizeMs", L(time.SizeMs));
                        Property(sb, "slideMs", L(time.SlideMs));
                        break;
                    case OperatorKindSpec.SessionWindow:
                        Property(sb, "time", Json(time.TimeMember!));
                        Property(sb, "gapMs", L(time.GapMs));
                        break;
                    case OperatorKindSpec.StreamJoin when time.TimeMember is not null:
                        Property(sb, "leftTime", Json(time.TimeMember));
                        if (time.EndTimeMember is not null) Property(sb, "leftEndTime", Json(time.EndTimeMember));
                        Property(sb, "rightTime", Json(time.RightTimeMember!));
                        Property(sb, "lowerBoundMs", L(time.LowerBoundMs));
                        Property(sb, "upperBoundMs", L(time.UpperBoundMs));
                        break;
                }
            }

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

        private static void Property(StringBuilder sb, string name, string jsonValue) =>
            sb.Append(",\n      \"").Append(name).Append("\": ").Append(jsonValue);

        public static string KindName(OperatorKindSpec kind) => kind switch
        {
            OperatorKindSpec.Source => "source",
            OperatorKindSpec.Map => "map",
            OperatorKindSpec.FlatMap => "flat-map",
            OperatorKindSpec.Filter => "filter",
            OperatorKindSpec.Reduce => "reduce",
            OperatorKindSpec.UpdateState => "update-state",
            OperatorKindSpec.Window => "window",
            OperatorKindSpec.Union => "union",
            OperatorKindSpec.Join => "join",
            OperatorKindSpec.Sink => "sink",
            OperatorKindSpec.ForEachBatch => "for-each-batch",
            OperatorKindSpec.Watermark => "watermark",
            OperatorKindSpec.EventTimeWindow => "event-time-window",
            OperatorKindSpec.SessionWindow => "session-window",
            OperatorKindSpec.StreamJoin => "stream-join",
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
