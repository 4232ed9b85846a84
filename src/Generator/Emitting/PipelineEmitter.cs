using System;
using System.Collections.Generic;
using System.Linq;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Emitting
{
    /// <summary>
    /// Emits a pipeline's generated half: its id, its manifest, the implementations of its declared
    /// sources, sinks and unions, and the wiring that builds its <c>PipelineDefinition</c> by calling
    /// the user's methods directly (method groups and named key selectors, no lambdas, no reflection).
    /// </summary>
    internal static class PipelineEmitter
    {
        private const string Graph = "global::PipelineDsl.Graph.";
        private const string CompilerServices = "global::PipelineDsl.CompilerServices.";

        public static string HintName(PipelineSpec spec) => spec.Target.HintPrefix + ".Pipeline.g.cs";

        public static string Emit(PipelineSpec spec)
        {
            var w = new SourceWriter();
            int depth = TypeNesting.Open(w, spec.Target);
            string id = SourceWriter.Literal(spec.PipelineId);

            // Declared handles first: they are implemented even when the pipeline has errors.
            bool first = true;
            foreach (var op in spec.Operators.Where(o => o.DeclaredAccessibility is not null))
            {
                if (!first) w.Line();
                first = false;
                string handle = op.Kind switch
                {
                    OperatorKindSpec.Source => $"global::PipelineDsl.Source<{op.OutputType}>",
                    OperatorKindSpec.Sink => $"global::PipelineDsl.Sink<{op.InputType}>",
                    _ => $"global::PipelineDsl.Stream<{op.OutputType}>",
                };
                w.Line(GeneratedCode.Attribute);
                w.Line($"{op.DeclaredAccessibility} static partial {handle} {op.MemberName}() => new {handle}({id}, {SourceWriter.Literal(op.Id)});");
            }

            if (!spec.HasErrors)
            {
                if (!first) w.Line();
                WriteDefinition(w, spec);
            }

            for (int i = 0; i < depth; i++) w.Close();
            return w.ToString();
        }

        private static void WriteDefinition(SourceWriter w, PipelineSpec spec)
        {
            var formatters = new FormatterExpressions();
            string manifest = ManifestWriter.Write(spec);
            w.Line($"/// <summary>The stable id of this pipeline, stored in every checkpoint.</summary>");
            w.Line(GeneratedCode.Attribute);
            w.Line($"public const string PipelineId = {SourceWriter.Literal(spec.PipelineId)};");
            w.Line();
            w.Line("/// <summary>");
            w.Line("/// The manifest of this build: every operator's id, version, kind, inputs, types and state schema.");
            w.Line("/// Checkpoints store it; an upgraded build compares its own manifest with the stored one.");
            w.Line("/// </summary>");
            w.Line(GeneratedCode.Attribute);
            w.Line("public const string ManifestJson = @\"" + manifest.Replace("\"", "\"\"") + "\";");
            w.Line();
            w.Line("/// <summary>The operator graph of this pipeline, wired to its methods. Hand it to the runtime.</summary>");
            w.Line(GeneratedCode.Attribute);
            w.Line($"public static {Graph}PipelineDefinition Definition => PipelineDslDefinitionHolder.Value;");
            w.Line();
            w.Line(GeneratedCode.Attribute);
            w.Open("private static class PipelineDslDefinitionHolder");
            w.Line($"internal static readonly {Graph}PipelineDefinition Value = BuildPipelineDslDefinition();");
            w.Close();
            w.Line();

            var names = VariableNames(spec.Operators);
            var selectors = new List<(string Name, string RecordType, string KeyType, string Member)>();
            string L(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture) + "L";
            var migrations = new List<(string Name, OperatorSpec Operator, MigrationSpec Migration)>();
            w.Line(GeneratedCode.Attribute);
            w.Open($"private static {Graph}PipelineDefinition BuildPipelineDslDefinition()");
            w.Line($"var builder = new {CompilerServices}PipelineBuilder(PipelineId, ManifestJson);");
            foreach (var op in TopologicalOrder(spec.Operators))
            {
                string v = names[op.Id];
                string opId = SourceWriter.Literal(op.Id);
                string version = op.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);
                string Input(int i) => names[op.Inputs[i]];
                string KeySelector(string prefix, string recordType, string member)
                {
                    string name = $"PipelineDsl{prefix}_{SourceWriter.Identifier(op.Id)}";
                    selectors.Add((name, recordType, op.KeyType!, member));
                    return Call(name, 1);
                }

                string TimeSelector(string prefix, string recordType, string member)
                {
                    string name = $"PipelineDsl{prefix}_{SourceWriter.Identifier(op.Id)}";
                    selectors.Add((name, recordType, "long", member));
                    return Call(name, 1);
                }

                // Per-record functions are passed as lambdas that call the user's static method, not as method
                // groups: a delegate bound to a static method goes through a shuffle thunk on every call, while a
                // lambda is an instance method of the compiler's cached closure class, called directly (and the
                // user's method is inlined into it when small).
                static string Call(string method, int arity) => arity switch
                {
                    1 => $"static a => {method}(a)",
                    2 => $"static (a, b) => {method}(a, b)",
                    _ => $"static (a, b, c) => {method}(a, b, c)",
                };

                switch (op.Kind)
                {
                    case OperatorKindSpec.Source:
                        w.Line($"var {v} = builder.Source<{op.OutputType}>({opId}, {version});");
                        break;
                    case OperatorKindSpec.Map when op.TakesBatchTime:
                        w.Line($"var {v} = builder.MapWithBatchTime<{op.InputType}, {op.OutputType}>({opId}, {version}, {Input(0)}, {Call(op.MemberName!, 2)});");
                        break;
                    case OperatorKindSpec.Map:
                        w.Line($"var {v} = builder.Map<{op.InputType}, {op.OutputType}>({opId}, {version}, {Input(0)}, {Call(op.MemberName!, 1)});");
                        break;
                    case OperatorKindSpec.FlatMap:
                        w.Line($"var {v} = builder.FlatMap<{op.InputType}, {op.OutputType}>({opId}, {version}, {Input(0)}, {Call(op.MemberName!, 1)});");
                        break;
                    case OperatorKindSpec.Filter:
                        w.Line($"var {v} = builder.Filter<{op.InputType}>({opId}, {version}, {Input(0)}, {Call(op.MemberName!, 1)});");
                        break;
                    case OperatorKindSpec.Reduce:
                        w.Line($"var {v} = builder.Reduce<{op.KeyType}, {op.InputType}>({opId}, {version}, {Input(0)}, {KeySelector("KeyOf", op.InputType!, op.KeyMember!)}, {Call(op.MemberName!, 2)});");
                        break;
                    case OperatorKindSpec.UpdateState:
                        w.Line($"var {v} = builder.UpdateState<{op.KeyType}, {op.InputType}, {op.StateType}, {op.OutputType}>(");
                        w.Line($"    {opId}, {version}, {Input(0)}, {KeySelector("KeyOf", op.InputType!, op.KeyMember!)}, {Call(op.MemberName!, 3)},");
                        w.Line($"    keyFormatter: {formatters.For(op.KeyShape!)},");
                        w.Line($"    stateFormatter: {formatters.For(op.StateShape!)},");
                        w.Line($"    idleTimeoutBatches: {op.IdleTimeoutBatches},");
                        if (op.Migrations.Count == 0)
                        {
                            w.Line($"    onTimeout: {op.OnTimeoutMethod ?? "null"});");
                        }
                        else
                        {
                            w.Line($"    onTimeout: {op.OnTimeoutMethod ?? "null"},");
                            w.Line($"    migrations: new global::System.Collections.Generic.Dictionary<int, {CompilerServices}StateDecoder<{op.StateType}>>");
                            w.Line("    {");
                            foreach (var m in op.Migrations)
                            {
                                string name = MigrationName(op, m.FromVersion);
                                migrations.Add((name, op, m));
                                w.Line($"        [{m.FromVersion}] = {name},");
                            }

                            w.Line("    });");
                        }
                        break;
                    case OperatorKindSpec.Window:
                        w.Line($"var {v} = builder.Window<{op.KeyType}, {op.InputType}>(");
                        w.Line($"    {opId}, {version}, {Input(0)}, {KeySelector("KeyOf", op.InputType!, op.KeyMember!)}, {Call(op.MemberName!, 2)},");
                        w.Line($"    keyFormatter: {formatters.For(op.KeyShape!)},");
                        w.Line($"    valueFormatter: {formatters.For(op.StateShape!)},");
                        w.Line($"    lengthBatches: {op.LengthBatches},");
                        w.Line($"    slideBatches: {op.SlideBatches});");
                        break;
                    case OperatorKindSpec.Union:
                        w.Line($"var {v} = builder.Union<{op.OutputType}>({opId}, {version}, {string.Join(", ", op.Inputs.Select(i => names[i]))});");
                        break;
                    case OperatorKindSpec.Join:
                        w.Line($"var {v} = builder.Join<{op.KeyType}, {op.InputType}, {op.RightType}, {op.OutputType}>(");
                        w.Line($"    {opId}, {version}, {Input(0)}, {Input(1)},");
                        w.Line($"    {KeySelector("LeftKeyOf", op.InputType!, op.KeyMember!)}, {KeySelector("RightKeyOf", op.RightType!, op.RightKeyMember!)}, {Call(op.MemberName!, 2)});");
                        break;
                    case OperatorKindSpec.Watermark:
                        w.Line($"var {v} = builder.Watermark<{op.OutputType}>({opId}, {version}, {Input(0)}, {TimeSelector("TimeOf", op.InputType!, op.EventTime!.TimeMember!)},");
                        w.Line($"    maxOutOfOrdernessMs: {L(op.EventTime.MaxOutOfOrdernessMs)});");
                        break;
                    case OperatorKindSpec.EventTimeWindow:
                    case OperatorKindSpec.SessionWindow:
                    {
                        bool session = op.Kind == OperatorKindSpec.SessionWindow;
                        w.Line($"var {v} = builder.{(session ? "SessionWindow" : "EventTimeWindow")}<{op.KeyType}, {op.InputType}>(");
                        w.Line($"    {opId}, {version}, {Input(0)}, {KeySelector("KeyOf", op.InputType!, op.KeyMember!)}, {TimeSelector("TimeOf", op.InputType!, op.EventTime!.TimeMember!)}, {Call(op.MemberName!, 2)},");
                        w.Line($"    keyFormatter: {formatters.For(op.KeyShape!)},");
                        w.Line($"    valueFormatter: {formatters.For(op.StateShape!)},");
                        if (session) w.Line($"    gapMs: {L(op.EventTime.GapMs)});");
                        else w.Line($"    sizeMs: {L(op.EventTime.SizeMs)}, slideMs: {L(op.EventTime.SlideMs)});");
                        break;
                    }

                    case OperatorKindSpec.StreamJoin:
                    {
                        var time = op.EventTime!;
                        w.Line($"var {v} = builder.StreamJoin<{op.KeyType}, {op.InputType}, {op.RightType}, {op.OutputType}>(");
                        w.Line($"    {opId}, {version}, {Input(0)}, {Input(1)},");
                        w.Line($"    {KeySelector("LeftKeyOf", op.InputType!, op.KeyMember!)}, {KeySelector("RightKeyOf", op.RightType!, op.RightKeyMember!)}, {Call(op.MemberName!, 2)},");
                        w.Line($"    keyFormatter: {formatters.For(op.KeyShape!)},");
                        w.Line($"    leftFormatter: {formatters.For(op.StateShape!)},");
                        if (time.TimeMember is null)
                        {
                            w.Line($"    rightFormatter: {formatters.For(op.RightShape!)});");
                            break;
                        }

                        w.Line($"    rightFormatter: {formatters.For(op.RightShape!)},");
                        string end = time.EndTimeMember is null ? "null" : TimeSelector("LeftEndTimeOf", op.InputType!, time.EndTimeMember);
                        w.Line($"    bounds: new {CompilerServices}JoinTimeBounds<{op.InputType}, {op.RightType}>(");
                        w.Line($"        {TimeSelector("LeftTimeOf", op.InputType!, time.TimeMember)}, {end}, {TimeSelector("RightTimeOf", op.RightType!, time.RightTimeMember!)},");
                        w.Line($"        LowerBoundMs: {L(time.LowerBoundMs)}, UpperBoundMs: {L(time.UpperBoundMs)}));");
                        break;
                    }

                    case OperatorKindSpec.Sink:
                        w.Line($"builder.Sink<{op.InputType}>({opId}, {version}, {Input(0)});");
                        break;
                    case OperatorKindSpec.ForEachBatch:
                        w.Line($"builder.ForEachBatch<{op.InputType}>({opId}, {version}, {Input(0)}, {op.MemberName});");
                        break;
                }
            }

            foreach (var retired in spec.Retired) w.Line($"builder.Retire({SourceWriter.Literal(retired)});");
            foreach (var op in spec.Operators)
            {
                foreach (int version in op.DiscardsStateFrom) w.Line($"builder.DiscardState({SourceWriter.Literal(op.Id)}, {version});");
            }

            w.Line("return builder.Build();");
            w.Close();

            foreach (var (name, op, m) in migrations)
            {
                // State of version m.FromVersion, decoded with its own type's formatter, then migrated step by step.
                string call = $"{formatters.For(m.InputShape)}.Deserialize(ref reader)";
                foreach (var step in op.Migrations.Where(x => x.FromVersion >= m.FromVersion).OrderBy(x => x.FromVersion)) call = $"{step.MethodName}({call})";
                w.Line();
                w.Line(GeneratedCode.Attribute);
                w.Line($"private static {op.StateType} {name}(ref global::PipelineDsl.Serialization.MessagePackReader reader) =>");
                w.Line($"    {call};");
            }

            foreach (var (name, recordType, keyType, member) in selectors)
            {
                w.Line();
                w.Line(GeneratedCode.Attribute);
                w.Line($"private static {keyType} {name}({recordType} record) => record.{member};");
            }

            formatters.WriteEnumFormatters(w);
        }

        private static string MigrationName(OperatorSpec op, int fromVersion) =>
            $"PipelineDslMigrate_{SourceWriter.Identifier(op.Id)}_from_{fromVersion.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

        /// <summary>Inputs before consumers; ties broken by id so that the order is deterministic.</summary>
        private static IEnumerable<OperatorSpec> TopologicalOrder(EquatableArray<OperatorSpec> operators)
        {
            var remaining = operators.ToList();
            var done = new HashSet<string>(StringComparer.Ordinal);
            while (remaining.Count > 0)
            {
                var next = remaining.FirstOrDefault(o => o.Inputs.All(done.Contains))
                    ?? throw new InvalidOperationException("The pipeline graph is not acyclic.");
                remaining.Remove(next);
                done.Add(next.Id);
                yield return next;
            }
        }

        private static Dictionary<string, string> VariableNames(EquatableArray<OperatorSpec> operators)
        {
            var names = new Dictionary<string, string>(StringComparer.Ordinal);
            var used = new HashSet<string>(StringComparer.Ordinal) { "builder" };
            foreach (var op in operators)
            {
                string baseName = "op_" + SourceWriter.Identifier(op.Id);
                string name = baseName;
                for (int n = 2; !used.Add(name); n++) name = baseName + "_" + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
                names[op.Id] = name;
            }

            return names;
        }
    }
}
