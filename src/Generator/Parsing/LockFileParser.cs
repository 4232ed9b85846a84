using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using PipelineDsl.Generator.Diagnostics;
using PipelineDsl.Generator.Emitting;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>One operator as the lock file records it: what its checkpoints hold.</summary>
    internal sealed record LockedOperatorSpec(string Id, int Version, string Kind, string? KeySchema, string? ValueSchema, EquatableArray<LockedProperty> Properties)
    {
        /// <summary>A recorded property's canonical text, or null when the lock file (an older build's) does not record it.</summary>
        public string? Property(string name) => Properties.FirstOrDefault(p => p.Name == name)?.Value;
    }

    /// <summary>A property of a locked operator that a compatibility rule compares (<see cref="PipelineDsl.Graph.OperatorCompatibility"/>).</summary>
    internal sealed record LockedProperty(string Name, string Value);

    internal sealed record LockedPipelineSpec(string PipelineId, EquatableArray<LockedOperatorSpec> Operators);

    /// <summary>The lock file: every pipeline's manifest as of the last explicit <c>lock</c>.</summary>
    internal sealed record LockFileSpec(string Path, EquatableArray<LockedPipelineSpec> Pipelines, EquatableArray<DiagnosticInfo> Diagnostics);

    /// <summary>Where a pipeline's elements are declared, for compatibility diagnostics only.</summary>
    internal sealed record PipelineLocationsInfo(string PipelineId, LocationInfo? Class, EquatableArray<OperatorLocationInfo> Operators);

    internal sealed record OperatorLocationInfo(string Id, LocationInfo? Location);

    internal static class LockFileParser
    {
        public const string FileName = "pipelines.lock.json";

        public static LockFileSpec? Parse(AdditionalText file, CancellationToken ct)
        {
            var text = file.GetText(ct)?.ToString() ?? "";
            var pipelines = new List<LockedPipelineSpec>();
            try
            {
                if (MiniJson.Parse(text) is not Dictionary<string, object?> root) throw new FormatException("the file is not a JSON object");
                if (!root.TryGetValue("pipelines", out var list) || list is not List<object?> items) throw new FormatException("it has no \"pipelines\" array");
                foreach (var item in items)
                {
                    if (item is not Dictionary<string, object?> p || p.TryGetValue("pipeline", out var id) is false || id is not string pipelineId)
                        throw new FormatException("a pipeline entry has no \"pipeline\" id");
                    var operators = new List<LockedOperatorSpec>();
                    if (p.TryGetValue("operators", out var ops) && ops is List<object?> opList)
                    {
                        foreach (var op in opList.OfType<Dictionary<string, object?>>())
                        {
                            string opId = op.TryGetValue("id", out var v) && v is string s ? s : throw new FormatException($"an operator of '{pipelineId}' has no id");
                            int version = op.TryGetValue("version", out var ver) && ver is double d ? (int)d : 1;
                            string kind = op.TryGetValue("kind", out var k) && k is string ks ? ks : "";
                            string? keySchema = null, valueSchema = null;
                            if (op.TryGetValue("stateSchema", out var schema) && schema is Dictionary<string, object?> sc)
                            {
                                keySchema = sc.TryGetValue("key", out var key) ? key as string : null;
                                valueSchema = sc.TryGetValue("value", out var value) ? value as string : null;
                            }

                            var properties = new List<LockedProperty>();
                            foreach (var pair in op)
                            {
                                string? canonical = pair.Value switch
                                {
                                    string str => str,
                                    double number => ((long)number).ToString(CultureInfo.InvariantCulture),
                                    List<object?> items2 when pair.Key == "inputs" => PipelineDsl.Graph.OperatorCompatibility.Canonical(items2.OfType<string>()),
                                    _ => null,
                                };
                                if (canonical is not null) properties.Add(new LockedProperty(pair.Key, canonical));
                            }

                            operators.Add(new LockedOperatorSpec(opId, version, kind, keySchema, valueSchema, properties.ToEquatableArray()));
                        }
                    }

                    pipelines.Add(new LockedPipelineSpec(pipelineId, operators.ToEquatableArray()));
                }

                return new LockFileSpec(file.Path, pipelines.ToEquatableArray(), EquatableArray<DiagnosticInfo>.Empty);
            }
            catch (FormatException e)
            {
                var location = new LocationInfo(file.Path, new TextSpan(0, 0), new LinePositionSpan(default, default));
                return new LockFileSpec(file.Path, EquatableArray<LockedPipelineSpec>.Empty,
                    new[] { DiagnosticInfo.Create(DiagnosticDescriptors.LockFileUnreadable, location, file.Path, e.Message) }.ToEquatableArray());
            }
        }

        public static PipelineLocationsInfo? Locations(GeneratorAttributeSyntaxContext context, CancellationToken ct)
        {
            var attribute = context.Attributes[0];
            if (attribute.ConstructorArguments.Length != 1 || attribute.ConstructorArguments[0].Value is not string id) return null;
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var operators = new List<OperatorLocationInfo>();
            foreach (var method in type.GetMembers().OfType<IMethodSymbol>())
            {
                foreach (var a in method.GetAttributes())
                {
                    if (!KnownNames.IsOperatorAttribute(a.AttributeClass)) continue;
                    if (a.ConstructorArguments.Length >= 1 && a.ConstructorArguments[0].Value is string opId)
                        operators.Add(new OperatorLocationInfo(opId, LocationInfo.From(SyntaxHelpers.NameLocation(method))));
                }
            }

            return new PipelineLocationsInfo(id, LocationInfo.From(SyntaxHelpers.NameLocation(type)), operators.ToEquatableArray());
        }
    }

    /// <summary>
    /// Compares a pipeline with its locked manifest and reports every change that would stop this build
    /// from restoring a checkpoint the locked build wrote. The schema rules are the runtime's own.
    /// </summary>
    internal static class LockCompatibility
    {
        private static bool IsStateful(string kind) => PipelineDsl.Graph.OperatorKinds.KeepsState(kind);

        public static IEnumerable<DiagnosticInfo> Check(PipelineSpec pipeline, LockedPipelineSpec locked, PipelineLocationsInfo? locations)
        {
            LocationInfo? At(string id) => locations?.Operators.FirstOrDefault(o => o.Id == id)?.Location ?? locations?.Class;
            LocationInfo? Class() => locations?.Class;
            string V(int v) => v.ToString(CultureInfo.InvariantCulture);

            foreach (var old in locked.Operators)
            {
                var now = pipeline.Operators.FirstOrDefault(o => o.Id == old.Id);
                if (now is null)
                {
                    if (pipeline.Retired.Contains(old.Id)) continue;
                    if (IsStateful(old.Kind))
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.StatefulOperatorRemoved, Class(), old.Id, pipeline.PipelineId);
                    else if (old.Kind == PipelineDsl.Graph.OperatorKinds.Source)
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.SourceRemoved, Class(), old.Id, pipeline.PipelineId);
                    continue;
                }

                string kind = ManifestKind(now.Kind);
                if (kind != old.Kind && (IsStateful(old.Kind) || IsStateful(kind) || old.Kind == PipelineDsl.Graph.OperatorKinds.Source || kind == PipelineDsl.Graph.OperatorKinds.Source))
                {
                    yield return DiagnosticInfo.Create(DiagnosticDescriptors.OperatorKindChanged, At(old.Id), old.Id, old.Kind, kind);
                    continue;
                }

                if (now.Version < old.Version)
                {
                    yield return DiagnosticInfo.Create(DiagnosticDescriptors.VersionLowered, At(old.Id), old.Id, V(old.Version), V(now.Version));
                    continue;
                }

                if (!IsStateful(old.Kind)) continue;

                // The state rule shared with the restore (Graph/StateCompatibility.cs), rendered as diagnostics.
                var current = ManifestWriter.StateProperties(now).ToDictionary(p => p.Name, p => p.Value);
                current["inputs"] = PipelineDsl.Graph.OperatorCompatibility.Canonical(now.Inputs);
                var stored = new PipelineDsl.Graph.StoredState
                {
                    Kind = old.Kind,
                    Version = old.Version,
                    KeySchema = old.KeySchema,
                    ValueSchema = old.ValueSchema,
                    Properties = old.Property,
                };
                var state = new PipelineDsl.Graph.CurrentState
                {
                    Kind = kind,
                    KeepsState = true,
                    Version = now.Version,
                    KeySchema = now.StateSchema?.KeySchema,
                    ValueSchema = now.StateSchema?.ValueSchema,
                    Properties = name => current.TryGetValue(name, out var value) ? value : null,
                    MigratesFrom = v => now.Migrations.Any(m => m.FromVersion == v),
                    DiscardsFrom = v => now.DiscardsStateFrom.Contains(v),
                };
                var ruling = PipelineDsl.Graph.StateCompatibility.Decide(stored, state, retired: false);
                switch (ruling.Conflict)
                {
                    case PipelineDsl.Graph.StateConflict.KeyTypeChanged:
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.KeyTypeChanged, At(old.Id), old.Id, old.KeySchema!, now.StateSchema!.KeySchema);
                        continue;
                    case PipelineDsl.Graph.StateConflict.Rekeyed:
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.StateRekeyed, At(old.Id), old.Id, ruling.Detail!, V(now.Version + (now.Version == old.Version ? 1 : 0)), V(old.Version));
                        continue;
                    case PipelineDsl.Graph.StateConflict.PropertyChanged:
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.StatePropertyChanged, At(old.Id), old.Id, ruling.Detail!, V(old.Version + 1), V(old.Version));
                        continue;
                    case PipelineDsl.Graph.StateConflict.SchemaChanged:
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.IncompatibleStateChange, At(old.Id), old.Id, V(old.Version), ruling.Detail!, V(old.Version + 1));
                        continue;
                    case PipelineDsl.Graph.StateConflict.NoMigration:
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.VersionBumpWithoutMigration, At(old.Id), old.Id, V(old.Version), V(now.Version));
                        continue;
                }

                // Migrating is allowed; the generator alone can also check that the migration reads what the lock file holds.
                if (ruling.Action == PipelineDsl.Graph.StateAction.Migrate && old.ValueSchema is not null)
                {
                    var migration = now.Migrations.First(m => m.FromVersion == old.Version);
                    if (PipelineDsl.Graph.SchemaCompatibility.Check(old.ValueSchema, migration.InputShape.Schema) is { } reason)
                        yield return DiagnosticInfo.Create(DiagnosticDescriptors.MigrationCannotReadLockedState, At(old.Id), old.Id, V(old.Version), migration.MethodName, reason);
                }
            }
        }

        private static string ManifestKind(OperatorKindSpec kind) => Emitting.ManifestWriter.KindName(kind);
    }
}
