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
    internal static partial class PipelineParser
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

            /// <summary>A map whose method takes the batch's processing time (<c>BatchTime</c>) as its second parameter.</summary>
            public bool TakesBatchTime { get; set; }
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

        private sealed partial class Parser
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
        }
    }
}
