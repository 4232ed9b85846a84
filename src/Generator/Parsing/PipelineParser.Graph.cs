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
        /// <summary>The graph across operators: ids, inputs, input types, watermarks upstream of event time, cycles.</summary>
        private sealed partial class Parser
        {
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
        }
    }
}
