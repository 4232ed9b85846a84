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
        /// <summary>Each operator method's shape against its kind: input, output, key, time and state types.</summary>
        private sealed partial class Parser
        {
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
                        if (!m.IsStatic || !plainParams || ps.Length is not (1 or 2) || m.ReturnsVoid
                            || (ps.Length == 2 && !KnownNames.Is(ps[1].Type, KnownNames.BatchTime)))
                            return WrongShape("'static TOut Name(TIn value)' or 'static TOut Name(TIn value, BatchTime time)'");
                        c.TakesBatchTime = ps.Length == 2;
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
        }
    }
}
