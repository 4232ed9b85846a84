using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using Microsoft.CodeAnalysis;
using PipelineDsl.Generator.Diagnostics;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>
    /// Turns a [Pipeline] class into a <see cref="PipelineSpec"/>: reads each operator attribute, checks
    /// each method's shape, resolves keys and state, and validates the graph (ids, inputs, types, cycles).
    /// </summary>
    internal static class PipelineParser
    {
        private static readonly Regex IdPattern = new("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", RegexOptions.CultureInvariant);

        public static PipelineParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken ct)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            try
            {
                return new Parser(type, context.Attributes[0], context.SemanticModel.Compilation, ct).Run();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return new PipelineParseResult(null, new[] { DiagnosticInfo.Create(DiagnosticDescriptors.GeneratorFailure, SyntaxHelpers.NameLocation(type), type.Name, e.GetType().Name + ": " + e.Message) }.ToEquatableArray());
            }
        }

        /// <summary>Validates an element or pipeline id; returns false (and reports) when it is unusable.</summary>
        internal static bool ValidateId(string? id, string what, string memberName, string attributeName, Location? location, List<DiagnosticInfo> diagnostics)
        {
            if (string.IsNullOrWhiteSpace(id))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MissingId, location, what, memberName, attributeName));
                return false;
            }

            if (!IdPattern.IsMatch(id))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MalformedId, location, id!));
                return false;
            }

            return true;
        }

        /// <summary>One operator as read from its attribute and method, before graph validation.</summary>
        private sealed class Candidate
        {
            public Candidate(IMethodSymbol method, AttributeData attribute, OperatorKindSpec kind, string id)
            {
                Method = method;
                Attribute = attribute;
                Kind = kind;
                Id = id;
            }

            public IMethodSymbol Method { get; }
            public AttributeData Attribute { get; }
            public OperatorKindSpec Kind { get; }
            public string Id { get; }
            public int Version { get; set; } = 1;
            public bool ValidShape { get; set; }
            public List<(string? Id, Location? Location, string Property)> Inputs { get; } = new();
            public List<ITypeSymbol?> ExpectedInputTypes { get; } = new();
            public ITypeSymbol? OutputType { get; set; }
            public ITypeSymbol? KeyType { get; set; }
            public string? KeyMember { get; set; }
            public string? RightKeyMember { get; set; }
            public ITypeSymbol? StateType { get; set; }
            public TypeShapeSpec? KeyShape { get; set; }
            public TypeShapeSpec? StateShape { get; set; }
            public int IdleTimeoutBatches { get; set; }
            public string? OnTimeout { get; set; }
            public int LengthBatches { get; set; }
            public int SlideBatches { get; set; } = 1;
            public bool ReturnsTask { get; set; }
            public string? TimeMember { get; set; }
            public string? EndTimeMember { get; set; }
            public string? RightTimeMember { get; set; }
            public long SizeMs { get; set; }
            public long SlideMs { get; set; }
            public long GapMs { get; set; }
            public long MaxOutOfOrdernessMs { get; set; }
            public long LowerBoundMs { get; set; }
            public long UpperBoundMs { get; set; }
            public TypeShapeSpec? RightShape { get; set; }
            public bool IsEventTime => Kind is OperatorKindSpec.EventTimeWindow or OperatorKindSpec.SessionWindow
                || (Kind == OperatorKindSpec.StreamJoin && (TimeMember is not null || RightTimeMember is not null));
            public bool IsStateful => PipelineDsl.Graph.OperatorKinds.KeepsState(Emitting.ManifestWriter.KindName(Kind));
            public bool IsSink => Kind is OperatorKindSpec.Sink or OperatorKindSpec.ForEachBatch;
            public Location? IdLocation { get; set; }
        }

        private sealed class Parser
        {
            private readonly INamedTypeSymbol _type;
            private readonly AttributeData _pipelineAttribute;
            private readonly Compilation _compilation;
            private readonly CancellationToken _ct;
            private readonly List<DiagnosticInfo> _diagnostics = new();
            private string _pipelineId = "";

            public Parser(INamedTypeSymbol type, AttributeData pipelineAttribute, Compilation compilation, CancellationToken ct)
            {
                _type = type;
                _pipelineAttribute = pipelineAttribute;
                _compilation = compilation;
                _ct = ct;
            }

            public PipelineParseResult Run()
            {
                bool emittable = true;
                for (var t = _type; t is not null; t = t.ContainingType)
                {
                    if (!SyntaxHelpers.IsPartial(t, _ct))
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotPartial, SyntaxHelpers.NameLocation(t), t.Name));
                        emittable = false;
                    }

                    if (t.IsGenericType)
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GenericPipeline, SyntaxHelpers.NameLocation(t), t.Name));
                        emittable = false;
                    }
                }

                string? id = _pipelineAttribute.ConstructorArguments.Length == 1 ? _pipelineAttribute.ConstructorArguments[0].Value as string : null;
                if (ValidateId(id, "pipeline", _type.Name, "Pipeline", SyntaxHelpers.ArgumentLocation(_pipelineAttribute, null, 0, _ct), _diagnostics))
                    _pipelineId = id!;
                else
                    _pipelineId = _type.Name;

                var candidates = new List<Candidate>();
                foreach (var method in _type.GetMembers().OfType<IMethodSymbol>())
                {
                    _ct.ThrowIfCancellationRequested();
                    var attributes = method.GetAttributes().Where(a => KnownNames.IsOperatorAttribute(a.AttributeClass)).ToList();
                    if (attributes.Count == 0) continue;
                    if (attributes.Count > 1)
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MultipleOperatorAttributes, SyntaxHelpers.NameLocation(method), method.Name));
                        continue;
                    }

                    var candidate = ReadCandidate(method, attributes[0]);
                    if (candidate is not null) candidates.Add(candidate);
                }

                ValidateGraph(candidates);
                var upgrades = ReadUpgrades(candidates);
                if (!candidates.Any(c => c.Kind == OperatorKindSpec.Source))
                    _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoSource, SyntaxHelpers.NameLocation(_type), _pipelineId));

                bool hasErrors = _diagnostics.Any(d => DiagnosticDescriptors.ById(d.Id).DefaultSeverity == DiagnosticSeverity.Error);
                PipelineSpec? spec = null;
                if (emittable)
                {
                    // Even a pipeline with errors gets its source/sink/union declarations implemented, so
                    // that the user sees our diagnostics rather than a cascade of "no implementation" errors.
                    var operators = candidates
                        .Where(c => c.ValidShape && (!hasErrors ? true : c.Kind is OperatorKindSpec.Source or OperatorKindSpec.Sink or OperatorKindSpec.Union or OperatorKindSpec.Watermark))
                        .GroupBy(c => c.Id, StringComparer.Ordinal)
                        .Select(g => g.First())
                        .OrderBy(c => c.Id, StringComparer.Ordinal)
                        .Select(c => ToSpec(c, upgrades))
                        .ToEquatableArray();
                    spec = new PipelineSpec(SyntaxHelpers.Target(_type, _ct), _pipelineId, operators, upgrades.Retired.ToEquatableArray(), hasErrors);
                }

                return new PipelineParseResult(spec, _diagnostics.ToEquatableArray());
            }

            private Candidate? ReadCandidate(IMethodSymbol method, AttributeData attribute)
            {
                var kind = KindOf(attribute.AttributeClass!);
                string attributeName = attribute.AttributeClass!.Name.Replace("Attribute", "");
                string? id = attribute.ConstructorArguments.Length >= 1 ? attribute.ConstructorArguments[0].Value as string : null;
                var idLocation = SyntaxHelpers.ArgumentLocation(attribute, null, 0, _ct);
                if (!ValidateId(id, OperatorWord(kind), method.Name, attributeName, idLocation, _diagnostics)) return null;

                var c = new Candidate(method, attribute, kind, id!) { IdLocation = idLocation };
                var named = attribute.NamedArguments.ToDictionary(a => a.Key, a => a.Value);
                if (named.TryGetValue("Version", out var version) && version.Value is int v)
                {
                    c.Version = v;
                    if (v < 1) _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidVersion, SyntaxHelpers.ArgumentLocation(attribute, "Version", -1, _ct), c.Id, v.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                }

                string? Named(string name) => named.TryGetValue(name, out var value) ? value.Value as string : null;
                int NamedInt(string name, int fallback) => named.TryGetValue(name, out var value) && value.Value is int i ? i : fallback;
                long NamedLong(string name) => named.TryGetValue(name, out var value) && value.Value is long l ? l : 0;

                switch (kind)
                {
                    case OperatorKindSpec.Union:
                        var froms = attribute.ConstructorArguments.Length == 2 && attribute.ConstructorArguments[1].Kind == TypedConstantKind.Array
                            ? attribute.ConstructorArguments[1].Values.Select(x => x.Value as string).ToList()
                            : new List<string?>();
                        for (int i = 0; i < froms.Count; i++) c.Inputs.Add((froms[i], SyntaxHelpers.ArgumentLocation(attribute, null, i + 1, _ct), "From"));
                        if (froms.Count < 2)
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnionArity, SyntaxHelpers.ArgumentLocation(attribute, null, 0, _ct), c.Id, froms.Count.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                        break;
                    case OperatorKindSpec.Join:
                    case OperatorKindSpec.StreamJoin:
                        c.Inputs.Add((Named("Left"), SyntaxHelpers.ArgumentLocation(attribute, "Left", -1, _ct), "Left"));
                        c.Inputs.Add((Named("Right"), SyntaxHelpers.ArgumentLocation(attribute, "Right", -1, _ct), "Right"));
                        c.KeyMember = Named("LeftKey");
                        c.RightKeyMember = Named("RightKey");
                        break;
                    case OperatorKindSpec.Source:
                        break;
                    default:
                        c.Inputs.Add((Named("From"), SyntaxHelpers.ArgumentLocation(attribute, "From", -1, _ct), "From"));
                        c.KeyMember = Named("Key");
                        break;
                }

                c.IdleTimeoutBatches = NamedInt("IdleTimeoutBatches", 0);
                c.OnTimeout = Named("OnTimeout");
                c.LengthBatches = NamedInt("LengthBatches", 0);
                c.SlideBatches = NamedInt("SlideBatches", 1);
                c.TimeMember = Named(kind == OperatorKindSpec.StreamJoin ? "LeftTime" : "Time");
                c.EndTimeMember = Named("LeftEndTime");
                c.RightTimeMember = Named("RightTime");
                c.SizeMs = NamedLong("SizeMs");
                c.SlideMs = NamedLong("SlideMs");
                c.GapMs = NamedLong("GapMs");
                c.MaxOutOfOrdernessMs = NamedLong("MaxOutOfOrdernessMs");
                c.LowerBoundMs = NamedLong("LowerBoundMs");
                c.UpperBoundMs = NamedLong("UpperBoundMs");
                c.ValidShape = CheckShape(c);
                return c;
            }

            private static OperatorKindSpec KindOf(INamedTypeSymbol attributeClass) => attributeClass.Name switch
            {
                "SourceAttribute" => OperatorKindSpec.Source,
                "SinkAttribute" => OperatorKindSpec.Sink,
                "ForEachBatchAttribute" => OperatorKindSpec.ForEachBatch,
                "MapAttribute" => OperatorKindSpec.Map,
                "FlatMapAttribute" => OperatorKindSpec.FlatMap,
                "FilterAttribute" => OperatorKindSpec.Filter,
                "ReduceAttribute" => OperatorKindSpec.Reduce,
                "UpdateStateAttribute" => OperatorKindSpec.UpdateState,
                "WindowAttribute" => OperatorKindSpec.Window,
                "UnionAttribute" => OperatorKindSpec.Union,
                "JoinAttribute" => OperatorKindSpec.Join,
                "WatermarkAttribute" => OperatorKindSpec.Watermark,
                "EventTimeWindowAttribute" => OperatorKindSpec.EventTimeWindow,
                "SessionWindowAttribute" => OperatorKindSpec.SessionWindow,
                "StreamJoinAttribute" => OperatorKindSpec.StreamJoin,
                _ => throw new InvalidOperationException("Unknown operator attribute " + attributeClass.Name),
            };

            internal static string OperatorWord(OperatorKindSpec kind) => kind switch
            {
                OperatorKindSpec.Source => "source",
                OperatorKindSpec.Sink => "sink",
                OperatorKindSpec.ForEachBatch => "for-each-batch sink",
                OperatorKindSpec.Map => "map",
                OperatorKindSpec.FlatMap => "flat-map",
                OperatorKindSpec.Filter => "filter",
                OperatorKindSpec.Reduce => "reduce",
                OperatorKindSpec.UpdateState => "update-state",
                OperatorKindSpec.Window => "window",
                OperatorKindSpec.Union => "union",
                OperatorKindSpec.Join => "join",
                OperatorKindSpec.Watermark => "watermark",
                OperatorKindSpec.EventTimeWindow => "event-time window",
                OperatorKindSpec.SessionWindow => "session window",
                OperatorKindSpec.StreamJoin => "stream join",
                _ => "operator",
            };

            /// <summary>Checks the method against its kind; fills input, output, key and state types.</summary>
            private bool CheckShape(Candidate c)
            {
                var m = c.Method;
                var ps = m.Parameters;
                bool plainParams = ps.All(p => p.RefKind == RefKind.None) && !m.IsGenericMethod;
                bool WrongShape(string expected)
                {
                    _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.WrongShape, SyntaxHelpers.NameLocation(m), OperatorWord(c.Kind), m.Name, expected));
                    return false;
                }

                bool WrongDeclaration(string expected)
                {
                    _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.WrongDeclaration, SyntaxHelpers.NameLocation(m), m.Name, expected));
                    return false;
                }

                switch (c.Kind)
                {
                    case OperatorKindSpec.Watermark:
                    {
                        string expected = $"static partial Stream<T> {m.Name}()";
                        if (!m.IsStatic || !m.IsPartialDefinition || m.PartialImplementationPart is not null || ps.Length != 0 || m.IsGenericMethod || !KnownNames.Is(m.ReturnType, KnownNames.Stream))
                            return WrongDeclaration(expected);
                        var t = ((INamedTypeSymbol)m.ReturnType).TypeArguments[0];
                        c.OutputType = t;
                        c.ExpectedInputTypes.Add(t);
                        if (!ResolveTime(c, t, c.TimeMember, "Time")) return false;
                        if (c.MaxOutOfOrdernessMs < 0)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidEventTimeWindow, SyntaxHelpers.ArgumentLocation(c.Attribute, "MaxOutOfOrdernessMs", -1, _ct), c.Id,
                                "has MaxOutOfOrdernessMs = " + c.MaxOutOfOrdernessMs.ToString(System.Globalization.CultureInfo.InvariantCulture) + ": it must be 0 or more"));
                            return false;
                        }

                        var int64 = _compilation.GetSpecialType(SpecialType.System_Int64);
                        c.StateType = int64;
                        c.KeyShape = c.StateShape = ShapeResolver.Resolve(int64);
                        return true;
                    }

                    case OperatorKindSpec.EventTimeWindow:
                    case OperatorKindSpec.SessionWindow:
                    {
                        if (!m.IsStatic || !plainParams || ps.Length != 2 || !Same(ps[0].Type, ps[1].Type) || !Same(ps[0].Type, m.ReturnType))
                            return WrongShape("'static T Name(T a, T b)'");
                        var t = ps[0].Type;
                        c.ExpectedInputTypes.Add(t);
                        if (!ResolveKey(c, t, c.KeyMember, "Key")) return false;
                        if (!ResolveTime(c, t, c.TimeMember, "Time")) return false;
                        string? problem = c.Kind == OperatorKindSpec.SessionWindow
                            ? (c.GapMs < 1 ? "has GapMs = " + c.GapMs.ToString(System.Globalization.CultureInfo.InvariantCulture) + ": set GapMs to the inactivity gap, 1 ms or more" : null)
                            : c.SizeMs < 1 ? "has SizeMs = " + c.SizeMs.ToString(System.Globalization.CultureInfo.InvariantCulture) + ": set SizeMs to the window length, 1 ms or more"
                            : c.SlideMs < 0 || c.SlideMs > c.SizeMs ? "has SlideMs = " + c.SlideMs.ToString(System.Globalization.CultureInfo.InvariantCulture) + ": it must be between 1 and SizeMs, or 0 for tumbling windows"
                            : null;
                        if (problem is not null)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidEventTimeWindow, SyntaxHelpers.ArgumentLocation(c.Attribute, c.Kind == OperatorKindSpec.SessionWindow ? "GapMs" : "SizeMs", -1, _ct), c.Id, problem));
                            return false;
                        }

                        if (c.Kind == OperatorKindSpec.EventTimeWindow && c.SlideMs == 0) c.SlideMs = c.SizeMs;
                        c.StateType = t;
                        if (!Checkpointable(c, c.KeyType!, "key", out var keyShape) | !Checkpointable(c, t, "window value", out var valueShape)) return false;
                        c.KeyShape = keyShape;
                        c.StateShape = valueShape;
                        var windowType = _compilation.GetTypeByMetadataName(KnownNames.EventWindow);
                        if (windowType is null) return false;
                        c.OutputType = windowType.Construct(c.KeyType!, t);
                        return true;
                    }

                    case OperatorKindSpec.StreamJoin:
                    {
                        if (!m.IsStatic || !plainParams || ps.Length != 2 || m.ReturnsVoid) return WrongShape("'static TOut Name(TLeft left, TRight right)'");
                        c.ExpectedInputTypes.Add(ps[0].Type);
                        c.ExpectedInputTypes.Add(ps[1].Type);
                        c.OutputType = m.ReturnType.WithNullableAnnotation(NullableAnnotation.NotAnnotated);
                        if (!ResolveKey(c, ps[0].Type, c.KeyMember, "LeftKey")) return false;
                        var leftKey = c.KeyType!;
                        if (!ResolveKey(c, ps[1].Type, c.RightKeyMember, "RightKey")) return false;
                        if (!Same(leftKey, c.KeyType!))
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.JoinKeyMismatch, SyntaxHelpers.ArgumentLocation(c.Attribute, "RightKey", -1, _ct), c.Id, TypeNames.ForManifest(leftKey), TypeNames.ForManifest(c.KeyType!)));
                            return false;
                        }

                        bool timed = c.TimeMember is not null || c.RightTimeMember is not null;
                        string? problem = null;
                        if (timed && (c.TimeMember is null || c.RightTimeMember is null))
                            problem = "sets only one of LeftTime and RightTime: set both for an interval join, or neither for an unbounded join";
                        else if (!timed && (c.EndTimeMember is not null || c.LowerBoundMs != 0 || c.UpperBoundMs != 0))
                            problem = "sets LeftEndTime or bounds without LeftTime and RightTime: set both times, or remove the bounds";
                        else if (timed && c.EndTimeMember is null && c.LowerBoundMs > c.UpperBoundMs)
                            problem = "has LowerBoundMs above UpperBoundMs, so no pair can ever match";
                        if (problem is not null)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidJoinTimes, c.Attribute.ApplicationSyntaxReference?.GetSyntax(_ct).GetLocation(), c.Id, problem));
                            return false;
                        }

                        if (timed && (!ResolveTime(c, ps[0].Type, c.TimeMember, "LeftTime") | !ResolveTime(c, ps[1].Type, c.RightTimeMember, "RightTime")
                            | (c.EndTimeMember is not null && !ResolveTime(c, ps[0].Type, c.EndTimeMember, "LeftEndTime"))))
                            return false;
                        if (!Checkpointable(c, c.KeyType!, "key", out var keyShape) | !Checkpointable(c, ps[0].Type, "left record", out var leftShape) | !Checkpointable(c, ps[1].Type, "right record", out var rightShape))
                            return false;
                        c.KeyShape = keyShape;
                        c.StateType = ps[0].Type;
                        c.StateShape = leftShape;
                        c.RightShape = rightShape;
                        return true;
                    }

                    case OperatorKindSpec.Source:
                    case OperatorKindSpec.Sink:
                    case OperatorKindSpec.Union:
                    {
                        string handle = c.Kind == OperatorKindSpec.Source ? KnownNames.Source : c.Kind == OperatorKindSpec.Sink ? KnownNames.Sink : KnownNames.Stream;
                        string shortName = c.Kind == OperatorKindSpec.Source ? "Source" : c.Kind == OperatorKindSpec.Sink ? "Sink" : "Stream";
                        string expected = $"static partial {shortName}<T> {m.Name}()";
                        if (!m.IsStatic || !m.IsPartialDefinition || m.PartialImplementationPart is not null || ps.Length != 0 || m.IsGenericMethod || !KnownNames.Is(m.ReturnType, handle))
                            return WrongDeclaration(expected);
                        var t = ((INamedTypeSymbol)m.ReturnType).TypeArguments[0];
                        if (c.Kind == OperatorKindSpec.Sink) c.ExpectedInputTypes.Add(t);
                        else
                        {
                            c.OutputType = t;
                            if (c.Kind == OperatorKindSpec.Union) foreach (var _ in c.Inputs) c.ExpectedInputTypes.Add(t);
                        }

                        return true;
                    }

                    case OperatorKindSpec.ForEachBatch:
                    {
                        const string expected = "'static void Name(long batchId, IReadOnlyList<T> records)' (or returning Task)";
                        bool returnsTask = KnownNames.Is(m.ReturnType, "System.Threading.Tasks.Task");
                        if (!m.IsStatic || !plainParams || ps.Length != 2 || ps[0].Type.SpecialType != SpecialType.System_Int64
                            || !KnownNames.Is(ps[1].Type, "System.Collections.Generic.IReadOnlyList`1") || !(m.ReturnsVoid || returnsTask))
                            return WrongShape(expected);
                        c.ReturnsTask = returnsTask;
                        c.ExpectedInputTypes.Add(((INamedTypeSymbol)ps[1].Type).TypeArguments[0]);
                        return true;
                    }

                    case OperatorKindSpec.Map:
                        if (!m.IsStatic || !plainParams || ps.Length != 1 || m.ReturnsVoid) return WrongShape("'static TOut Name(TIn value)'");
                        c.ExpectedInputTypes.Add(ps[0].Type);
                        c.OutputType = m.ReturnType;
                        return true;

                    case OperatorKindSpec.FlatMap:
                    {
                        // A value-type enumerable cannot convert to Func<TIn, IEnumerable<TOut>>, so it is refused here.
                        var element = m.ReturnsVoid || !m.ReturnType.IsReferenceType ? null : EnumerableElement(m.ReturnType);
                        if (!m.IsStatic || !plainParams || ps.Length != 1 || element is null) return WrongShape("'static IEnumerable<TOut> Name(TIn value)'");
                        c.ExpectedInputTypes.Add(ps[0].Type);
                        c.OutputType = element;
                        return true;
                    }

                    case OperatorKindSpec.Filter:
                        if (!m.IsStatic || !plainParams || ps.Length != 1 || m.ReturnType.SpecialType != SpecialType.System_Boolean) return WrongShape("'static bool Name(T value)'");
                        c.ExpectedInputTypes.Add(ps[0].Type);
                        c.OutputType = ps[0].Type;
                        return true;

                    case OperatorKindSpec.Reduce:
                    case OperatorKindSpec.Window:
                    {
                        if (!m.IsStatic || !plainParams || ps.Length != 2 || !Same(ps[0].Type, ps[1].Type) || !Same(ps[0].Type, m.ReturnType))
                            return WrongShape("'static T Name(T a, T b)'");
                        var t = ps[0].Type;
                        c.ExpectedInputTypes.Add(t);
                        if (!ResolveKey(c, t, c.KeyMember, "Key")) return false;
                        if (c.Kind == OperatorKindSpec.Reduce)
                        {
                            c.OutputType = t;
                            return true;
                        }

                        if (c.SlideBatches < 1 || c.LengthBatches < c.SlideBatches || c.LengthBatches % c.SlideBatches != 0)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidWindow, SyntaxHelpers.ArgumentLocation(c.Attribute, "LengthBatches", -1, _ct), c.Id,
                                c.LengthBatches.ToString(System.Globalization.CultureInfo.InvariantCulture), c.SlideBatches.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                            return false;
                        }

                        c.StateType = t;
                        if (!Checkpointable(c, c.KeyType!, "key", out var keyShape) | !Checkpointable(c, t, "window value", out var valueShape)) return false;
                        c.KeyShape = keyShape;
                        c.StateShape = valueShape;
                        var windowed = _compilation.GetTypeByMetadataName(KnownNames.Windowed);
                        if (windowed is null) return false;
                        c.OutputType = windowed.Construct(c.KeyType!, t);
                        return true;
                    }

                    case OperatorKindSpec.UpdateState:
                    {
                        const string expected = "'static TOut Name(TKey key, TIn value, KeyedState<TState> state)'";
                        if (!m.IsStatic || !plainParams || ps.Length != 3 || m.ReturnsVoid || !KnownNames.Is(ps[2].Type, KnownNames.KeyedState))
                            return WrongShape(expected);
                        var input = ps[1].Type;
                        c.ExpectedInputTypes.Add(input);
                        c.OutputType = m.ReturnType;
                        c.StateType = ((INamedTypeSymbol)ps[2].Type).TypeArguments[0];
                        if (!ResolveKey(c, input, c.KeyMember, "Key")) return false;
                        if (!Same(ps[0].Type, c.KeyType!))
                            return WrongShape($"'static TOut Name({TypeNames.ForManifest(c.KeyType!)} key, TIn value, KeyedState<TState> state)', since its key '{c.KeyMember}' is a {TypeNames.ForManifest(c.KeyType!)}");
                        if (c.IdleTimeoutBatches < 0)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidIdleTimeout, SyntaxHelpers.ArgumentLocation(c.Attribute, "IdleTimeoutBatches", -1, _ct), c.Id, c.IdleTimeoutBatches.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                            return false;
                        }

                        if (!Checkpointable(c, c.KeyType!, "key", out var keyShape) | !Checkpointable(c, c.StateType, "state", out var stateShape)) return false;
                        c.KeyShape = keyShape;
                        c.StateShape = stateShape;
                        if (c.OnTimeout is not null && !CheckOnTimeout(c)) return false;
                        return true;
                    }

                    case OperatorKindSpec.Join:
                    {
                        if (!m.IsStatic || !plainParams || ps.Length != 2 || m.ReturnsVoid) return WrongShape("'static TOut Name(TLeft left, TRight right)'");
                        c.ExpectedInputTypes.Add(ps[0].Type);
                        c.ExpectedInputTypes.Add(ps[1].Type);
                        c.OutputType = m.ReturnType;
                        if (!ResolveKey(c, ps[0].Type, c.KeyMember, "LeftKey")) return false;
                        var leftKey = c.KeyType!;
                        if (!ResolveKey(c, ps[1].Type, c.RightKeyMember, "RightKey")) return false;
                        if (!Same(leftKey, c.KeyType!))
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.JoinKeyMismatch, SyntaxHelpers.ArgumentLocation(c.Attribute, "RightKey", -1, _ct), c.Id, TypeNames.ForManifest(leftKey), TypeNames.ForManifest(c.KeyType!)));
                            return false;
                        }

                        return true;
                    }
                }

                return false;
            }

            private bool CheckOnTimeout(Candidate c)
            {
                var keyName = TypeNames.ForManifest(c.KeyType!);
                var stateName = TypeNames.ForManifest(c.StateType!);
                var outName = TypeNames.ForManifest(c.OutputType!);
                var methods = _type.GetMembers(c.OnTimeout!).OfType<IMethodSymbol>().ToList();
                bool ok = methods.Any(t => t.IsStatic && !t.IsGenericMethod && t.Parameters.Length == 2 && t.Parameters.All(p => p.RefKind == RefKind.None)
                    && Same(t.Parameters[0].Type, c.KeyType!) && Same(t.Parameters[1].Type, c.StateType!) && Same(t.ReturnType, c.OutputType!));
                if (!ok)
                {
                    string hint = methods.Count == 0 ? "" : " (a method of that name exists but its signature differs)";
                    _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidOnTimeout, SyntaxHelpers.ArgumentLocation(c.Attribute, "OnTimeout", -1, _ct), c.Id, c.OnTimeout!, outName, keyName, stateName, hint));
                }

                return ok;
            }

            /// <summary>Checks that <paramref name="member"/> is a readable long member of <paramref name="recordType"/>.</summary>
            private bool ResolveTime(Candidate c, ITypeSymbol recordType, string? member, string property)
            {
                string? found = null;
                if (!string.IsNullOrEmpty(member))
                {
                    for (ITypeSymbol? t = recordType; t is not null && found is null; t = t.BaseType)
                    {
                        foreach (var candidate in t.GetMembers(member!))
                        {
                            ITypeSymbol? type = candidate switch
                            {
                                IPropertySymbol { IsStatic: false, IsIndexer: false, GetMethod: not null } p => p.Type,
                                IFieldSymbol { IsStatic: false } f => f.Type,
                                _ => null,
                            };
                            if (type is null || !_compilation.IsSymbolAccessibleWithin(candidate, _type)) continue;
                            found = type.SpecialType == SpecialType.System_Int64 ? "" : $" ('{member}' is a {TypeNames.ForManifest(type)})";
                            break;
                        }
                    }
                }

                if (found == "") return true;
                string hint = string.IsNullOrEmpty(member) ? $": set {property} = nameof(...)" : found ?? $" ('{member}' is not one of its members)";
                _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTimeMember,
                    string.IsNullOrEmpty(member) ? c.Attribute.ApplicationSyntaxReference?.GetSyntax(_ct).GetLocation() : SyntaxHelpers.ArgumentLocation(c.Attribute, property, -1, _ct),
                    property, c.Id, TypeNames.ForManifest(recordType), hint));
                return false;
            }

            private bool Checkpointable(Candidate c, ITypeSymbol type, string role, out TypeShapeSpec? shape)
            {
                shape = ShapeResolver.Resolve(type);
                if (shape is not null) return true;
                _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotCheckpointable, SyntaxHelpers.NameLocation(c.Method), c.Id, TypeNames.ForManifest(type), role));
                return false;
            }

            private bool ResolveKey(Candidate c, ITypeSymbol recordType, string? member, string property)
            {
                if (string.IsNullOrEmpty(member))
                {
                    _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MissingKey, c.Attribute.ApplicationSyntaxReference?.GetSyntax(_ct).GetLocation(), c.Id, property, TypeNames.ForManifest(recordType)));
                    return false;
                }

                for (ITypeSymbol? t = recordType; t is not null; t = t.BaseType)
                {
                    foreach (var candidate in t.GetMembers(member!))
                    {
                        ITypeSymbol? keyType = candidate switch
                        {
                            IPropertySymbol { IsStatic: false, IsIndexer: false, GetMethod: not null } p => p.Type,
                            IFieldSymbol { IsStatic: false } f => f.Type,
                            _ => null,
                        };
                        if (keyType is not null && _compilation.IsSymbolAccessibleWithin(candidate, _type))
                        {
                            c.KeyType = keyType;
                            return true;
                        }
                    }
                }

                _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnknownKeyMember, SyntaxHelpers.ArgumentLocation(c.Attribute, property, -1, _ct), c.Id, member!, TypeNames.ForManifest(recordType)));
                return false;
            }

            private static ITypeSymbol? EnumerableElement(ITypeSymbol type)
            {
                if (KnownNames.Is(type, "System.Collections.Generic.IEnumerable`1")) return ((INamedTypeSymbol)type).TypeArguments[0];
                var found = type.AllInterfaces.Where(i => KnownNames.Is(i, "System.Collections.Generic.IEnumerable`1")).ToList();
                return found.Count == 1 ? found[0].TypeArguments[0] : null;
            }

            private static bool Same(ITypeSymbol a, ITypeSymbol b) => SymbolEqualityComparer.Default.Equals(a, b);

            /// <summary>Checks ids, inputs, input types and cycles across the whole pipeline.</summary>
            private void ValidateGraph(List<Candidate> candidates)
            {
                var byId = new Dictionary<string, Candidate>(StringComparer.Ordinal);
                foreach (var c in candidates)
                {
                    if (byId.ContainsKey(c.Id))
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateOperatorId, c.IdLocation, c.Id, _pipelineId));
                    else
                        byId.Add(c.Id, c);
                }

                var consumed = new HashSet<string>(StringComparer.Ordinal);
                var edges = new Dictionary<Candidate, List<(Candidate Upstream, Location? Location)>>();
                foreach (var c in candidates)
                {
                    edges[c] = new List<(Candidate, Location?)>();
                    for (int i = 0; i < c.Inputs.Count; i++)
                    {
                        var (inputId, location, property) = c.Inputs[i];
                        if (string.IsNullOrWhiteSpace(inputId))
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MissingInput,
                                c.Kind == OperatorKindSpec.Union ? location : SyntaxHelpers.NameLocation(c.Method), c.Id, property));
                            continue;
                        }

                        if (!byId.TryGetValue(inputId!, out var upstream))
                        {
                            string suggestion = Suggest(inputId!, byId.Keys);
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnknownInput, location, c.Id, inputId!, _pipelineId, suggestion));
                            continue;
                        }

                        if (upstream.IsSink)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ReadsFromSink, location, c.Id, inputId!));
                            continue;
                        }

                        consumed.Add(upstream.Id);
                        edges[c].Add((upstream, location));
                        var expected = i < c.ExpectedInputTypes.Count ? c.ExpectedInputTypes[i] : null;
                        if (c.ValidShape && upstream.ValidShape && expected is not null && upstream.OutputType is not null && !Same(expected, upstream.OutputType))
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InputTypeMismatch, location, c.Id,
                                TypeNames.ForManifest(expected), inputId!, TypeNames.ForManifest(upstream.OutputType)));
                        }
                    }
                }

                ReportCycles(candidates, edges);
                ReportMissingWatermarks(candidates, edges);

                foreach (var c in candidates)
                {
                    if (!c.IsSink && !consumed.Contains(c.Id) && byId.TryGetValue(c.Id, out var first) && first == c)
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnconsumedOutput, SyntaxHelpers.NameLocation(c.Method), c.Id));
                }
            }

            /// <summary>Every input path of an event-time operator must pass a watermark stage before its source.</summary>
            private void ReportMissingWatermarks(List<Candidate> candidates, Dictionary<Candidate, List<(Candidate Upstream, Location? Location)>> edges)
            {
                foreach (var c in candidates.Where(c => c.ValidShape && c.IsEventTime))
                {
                    var reported = new HashSet<string>(StringComparer.Ordinal);
                    var seen = new HashSet<Candidate>();
                    var stack = new Stack<Candidate>(edges[c].Select(e => e.Upstream));
                    while (stack.Count > 0)
                    {
                        var n = stack.Pop();
                        if (!seen.Add(n) || n.Kind == OperatorKindSpec.Watermark) continue;
                        if (n.Kind == OperatorKindSpec.Source)
                        {
                            if (reported.Add(n.Id)) _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoWatermark, SyntaxHelpers.NameLocation(c.Method), c.Id, n.Id));
                            continue;
                        }

                        foreach (var (upstream, _) in edges[n]) stack.Push(upstream);
                    }
                }
            }

            private void ReportCycles(List<Candidate> candidates, Dictionary<Candidate, List<(Candidate Upstream, Location? Location)>> edges)
            {
                // Colour-marking depth-first search over "reads from" edges; each cycle is reported once.
                var state = new Dictionary<Candidate, int>();
                var path = new List<Candidate>();
                foreach (var start in candidates.OrderBy(c => c.Id, StringComparer.Ordinal))
                {
                    Visit(start);
                }

                void Visit(Candidate c)
                {
                    if (state.TryGetValue(c, out int s) && s != 0) return;
                    state[c] = 1;
                    path.Add(c);
                    foreach (var (upstream, location) in edges[c])
                    {
                        state.TryGetValue(upstream, out int us);
                        if (us == 1)
                        {
                            int from = path.IndexOf(upstream);
                            var cycle = path.Skip(from).Select(x => x.Id).Reverse().ToList();
                            cycle.Add(cycle[0]);
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.Cycle, location, _pipelineId, string.Join(" -> ", cycle)));
                        }
                        else if (us == 0)
                        {
                            Visit(upstream);
                        }
                    }

                    path.RemoveAt(path.Count - 1);
                    state[c] = 2;
                }
            }

            internal static string Suggest(string unknown, IEnumerable<string> known)
            {
                var best = known
                    .Select(k => (Id: k, Distance: Distance(unknown.ToLowerInvariant(), k.ToLowerInvariant())))
                    .Where(x => x.Distance <= Math.Max(2, unknown.Length / 3))
                    .OrderBy(x => x.Distance).ThenBy(x => x.Id, StringComparer.Ordinal)
                    .FirstOrDefault();
                if (best.Id is not null) return $": did you mean \"{best.Id}\"?";
                var all = known.OrderBy(k => k, StringComparer.Ordinal).ToList();
                return all.Count == 0 ? "" : ": its elements are " + string.Join(", ", all.Select(k => "\"" + k + "\""));
            }

            private static int Distance(string a, string b)
            {
                var d = new int[a.Length + 1, b.Length + 1];
                for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
                for (int j = 0; j <= b.Length; j++) d[0, j] = j;
                for (int i = 1; i <= a.Length; i++)
                {
                    for (int j = 1; j <= b.Length; j++)
                        d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
                }

                return d[a.Length, b.Length];
            }

            private OperatorSpec ToSpec(Candidate c, Upgrades upgrades)
            {
                string? Code(ITypeSymbol? t) => t is null ? null : TypeNames.ForCode(t);
                string? Display(ITypeSymbol? t) => t is null ? null : TypeNames.ForManifest(t);
                var input = c.ExpectedInputTypes.Count > 0 ? c.ExpectedInputTypes[0] : null;
                var right = c.Kind is OperatorKindSpec.Join or OperatorKindSpec.StreamJoin && c.ExpectedInputTypes.Count > 1 ? c.ExpectedInputTypes[1] : null;
                StateSchemaSpec? schema = null;
                if (c.Kind == OperatorKindSpec.StreamJoin && c.StateShape is not null && c.RightShape is not null && c.KeyShape is not null)
                {
                    // Both sides are kept: the value schema reads like a contract with the left records at key 0 and the
                    // right records at key 1, so the usual field-by-field rules decide compatibility for each side.
                    string value = "{0:" + c.StateShape.Schema + ",1:" + c.RightShape.Schema + "}";
                    schema = new StateSchemaSpec(ShapeResolver.Fingerprint(value), c.KeyShape.Schema, value, EquatableArray<StateFieldSpec>.Empty);
                }
                else if (c.StateShape is not null && c.KeyShape is not null && c.StateType is not null)
                {
                    var fields = c.StateType is INamedTypeSymbol named && c.StateShape.Kind == ShapeKind.Contract
                        ? ContractMembers.Keyed(named).OrderBy(f => f.Key)
                            .Select(f => new StateFieldSpec(f.Key, f.Member.Name, ShapeResolver.Resolve(f.Type)?.Schema ?? "?")).ToEquatableArray()
                        : EquatableArray<StateFieldSpec>.Empty;
                    schema = new StateSchemaSpec(ShapeResolver.Fingerprint(c.StateShape.Schema), c.KeyShape.Schema, c.StateShape.Schema, fields);
                }

                return new OperatorSpec(
                    Id: c.Id,
                    Version: c.Version,
                    Kind: c.Kind,
                    Inputs: c.Inputs.Select(i => i.Id ?? "").ToEquatableArray(),
                    MemberName: c.Method.Name,
                    DeclaredAccessibility: c.Kind is OperatorKindSpec.Source or OperatorKindSpec.Sink or OperatorKindSpec.Union or OperatorKindSpec.Watermark ? SyntaxHelpers.Accessibility(c.Method.DeclaredAccessibility) : null,
                    InputType: Code(input),
                    InputTypeDisplay: Display(input),
                    RightType: Code(right),
                    RightTypeDisplay: Display(right),
                    OutputType: Code(c.OutputType),
                    OutputTypeDisplay: Display(c.OutputType),
                    KeyType: Code(c.KeyType),
                    KeyTypeDisplay: Display(c.KeyType),
                    KeyMember: c.KeyMember,
                    RightKeyMember: c.RightKeyMember,
                    StateType: Code(c.StateType),
                    StateTypeDisplay: Display(c.StateType),
                    KeyShape: c.KeyShape,
                    StateShape: c.StateShape,
                    StateSchema: schema,
                    IdleTimeoutBatches: c.IdleTimeoutBatches,
                    OnTimeoutMethod: c.OnTimeout,
                    LengthBatches: c.LengthBatches,
                    SlideBatches: c.SlideBatches,
                    ReturnsTask: c.ReturnsTask,
                    Migrations: (upgrades.Migrations.TryGetValue(c.Id, out var m) ? m.OrderBy(x => x.FromVersion) : Enumerable.Empty<MigrationSpec>()).ToEquatableArray(),
                    DiscardsStateFrom: (upgrades.Discards.TryGetValue(c.Id, out var d) ? d.OrderBy(x => x) : Enumerable.Empty<int>()).ToEquatableArray(),
                    EventTime: c.Kind is OperatorKindSpec.Watermark or OperatorKindSpec.EventTimeWindow or OperatorKindSpec.SessionWindow or OperatorKindSpec.StreamJoin
                        ? new EventTimeSpec(c.TimeMember, c.EndTimeMember, c.RightTimeMember, c.SizeMs, c.SlideMs, c.GapMs, c.MaxOutOfOrdernessMs, c.LowerBoundMs, c.UpperBoundMs)
                        : null,
                    RightShape: c.RightShape);
            }

            /// <summary>The upgrade declarations of a pipeline: migrations, retired operators, discarded versions.</summary>
            private sealed class Upgrades
            {
                public Dictionary<string, List<MigrationSpec>> Migrations { get; } = new(StringComparer.Ordinal);
                public List<string> Retired { get; } = new();
                public Dictionary<string, SortedSet<int>> Discards { get; } = new(StringComparer.Ordinal);
            }

            private Upgrades ReadUpgrades(List<Candidate> candidates)
            {
                var result = new Upgrades();
                var byId = candidates.GroupBy(c => c.Id, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
                string Suggest(string unknown) => Parser.Suggest(unknown, candidates.Where(c => c.IsStateful).Select(c => c.Id));

                foreach (var attribute in _type.GetAttributes())
                {
                    string? name = attribute.AttributeClass is null ? null : KnownNames.MetadataName(attribute.AttributeClass);
                    string? id = attribute.ConstructorArguments.Length == 1 ? attribute.ConstructorArguments[0].Value as string : null;
                    if (name == "PipelineDsl.RetiredOperatorAttribute")
                    {
                        if (string.IsNullOrEmpty(id)) continue;
                        if (byId.ContainsKey(id!))
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RetiredOperatorExists, SyntaxHelpers.ArgumentLocation(attribute, null, 0, _ct), id!));
                        else if (!result.Retired.Contains(id!))
                            result.Retired.Add(id!);
                    }
                    else if (name == "PipelineDsl.DiscardStateAttribute")
                    {
                        if (string.IsNullOrEmpty(id)) continue;
                        int from = attribute.NamedArguments.FirstOrDefault(a => a.Key == "FromVersion").Value.Value as int? ?? 0;
                        if (!byId.TryGetValue(id!, out var target) || !target.IsStateful)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MigrationTargetUnknown, SyntaxHelpers.ArgumentLocation(attribute, null, 0, _ct),
                                "[DiscardState]", id!, "a stateful operator", _pipelineId, Suggest(id!)));
                            continue;
                        }

                        if (from < 1 || from >= target.Version)
                        {
                            _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidFromVersion, SyntaxHelpers.ArgumentLocation(attribute, "FromVersion", -1, _ct),
                                "[DiscardState]", id!, from.ToString(System.Globalization.CultureInfo.InvariantCulture), (target.Version - 1).ToString(System.Globalization.CultureInfo.InvariantCulture), target.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                            continue;
                        }

                        if (!result.Discards.TryGetValue(id!, out var set)) result.Discards[id!] = set = new SortedSet<int>();
                        set.Add(from);
                    }
                }

                result.Retired.Sort(StringComparer.Ordinal);
                var declared = new Dictionary<string, List<(int From, IMethodSymbol Method, ITypeSymbol Input, ITypeSymbol Output)>>(StringComparer.Ordinal);
                foreach (var method in _type.GetMembers().OfType<IMethodSymbol>())
                {
                    var attribute = method.GetAttributes().FirstOrDefault(a => a.AttributeClass is not null && KnownNames.MetadataName(a.AttributeClass) == "PipelineDsl.StateMigrationAttribute");
                    if (attribute is null) continue;
                    string id = attribute.ConstructorArguments.Length == 1 ? attribute.ConstructorArguments[0].Value as string ?? "" : "";
                    int from = attribute.NamedArguments.FirstOrDefault(a => a.Key == "FromVersion").Value.Value as int? ?? 0;
                    if (!byId.TryGetValue(id, out var target) || target.Kind != OperatorKindSpec.UpdateState)
                    {
                        string what = byId.TryGetValue(id, out var other) && other.Kind == OperatorKindSpec.Window
                            ? ": windows cannot migrate state, declare [DiscardState] for the old version instead"
                            : Suggest(id);
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MigrationTargetUnknown, SyntaxHelpers.ArgumentLocation(attribute, null, 0, _ct),
                            "[StateMigration]", id, "an update-state operator", _pipelineId, what));
                        continue;
                    }

                    if (from < 1 || from >= target.Version)
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidFromVersion, SyntaxHelpers.ArgumentLocation(attribute, "FromVersion", -1, _ct),
                            "[StateMigration]", id, from.ToString(System.Globalization.CultureInfo.InvariantCulture), (target.Version - 1).ToString(System.Globalization.CultureInfo.InvariantCulture), target.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                        continue;
                    }

                    if (!method.IsStatic || method.IsGenericMethod || method.Parameters.Length != 1 || method.Parameters[0].RefKind != RefKind.None || method.ReturnsVoid
                        || ShapeResolver.Resolve(method.Parameters[0].Type) is null)
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MigrationShape, SyntaxHelpers.NameLocation(method), method.Name));
                        continue;
                    }

                    if (!declared.TryGetValue(id, out var list)) declared[id] = list = new();
                    if (list.Any(m => m.From == from))
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateMigration, SyntaxHelpers.NameLocation(method), id, from.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                        continue;
                    }

                    list.Add((from, method, method.Parameters[0].Type, method.ReturnType));
                }

                foreach (var pair in declared)
                {
                    string id = pair.Key;
                    var list = pair.Value;
                    var target = byId[id];
                    var ordered = list.OrderBy(m => m.From).ToList();
                    string? broken = null;
                    Location? at = null;
                    for (int i = 0; i < ordered.Count && broken is null; i++)
                    {
                        int from = ordered[i].From;
                        var method = ordered[i].Method;
                        var output = ordered[i].Output;
                        if (from == target.Version - 1)
                        {
                            if (target.StateType is not null && !Same(output, target.StateType))
                            {
                                broken = $"the migration from version {from} ('{method.Name}') returns '{TypeNames.ForManifest(output)}' but the state of version {target.Version} is '{TypeNames.ForManifest(target.StateType)}'";
                                at = SyntaxHelpers.NameLocation(method);
                            }

                            continue;
                        }

                        var next = ordered.FirstOrDefault(m => m.From == from + 1);
                        if (next.Method is null)
                        {
                            broken = $"there is a migration from version {from} ('{method.Name}') but none from version {from + 1}, so state of version {from} cannot reach version {target.Version}";
                            at = SyntaxHelpers.NameLocation(method);
                        }
                        else if (!Same(output, next.Input))
                        {
                            broken = $"the migration from version {from} ('{method.Name}') returns '{TypeNames.ForManifest(output)}' but the migration from version {from + 1} ('{next.Method.Name}') takes '{TypeNames.ForManifest(next.Input)}'";
                            at = SyntaxHelpers.NameLocation(next.Method);
                        }
                    }

                    if (broken is not null)
                    {
                        _diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BrokenMigrationChain, at, id, broken));
                        continue;
                    }

                    result.Migrations[id] = ordered.Select(m => new MigrationSpec(m.From, m.Method.Name, ShapeResolver.Resolve(m.Input)!)).ToList();
                }

                return result;
            }
        }
    }
}
