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
    internal static partial class PipelineParser
    {
        /// <summary>The model: each checked operator as a spec, with its versions, migrations and discards.</summary>
        private sealed partial class Parser
        {
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
                    RightShape: c.RightShape,
                    TakesBatchTime: c.TakesBatchTime);
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
