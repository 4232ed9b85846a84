using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Execution;
using PipelineDsl.Graph;

namespace PipelineDsl.Checkpointing;

/// <summary>One operator in a comparison of a checkpoint with a build.</summary>
/// <param name="OperatorId">The operator.</param>
/// <param name="Kind">Its kind (as the build has it, else as the checkpoint had it).</param>
/// <param name="CheckpointVersion">Its version in the checkpoint (null: not there).</param>
/// <param name="BuildVersion">Its version in the build (null: not there).</param>
/// <param name="Result">kept, migrated from version N, discarded, retired, new, removed, or INCOMPATIBLE: why.</param>
internal sealed record DiffRow(string OperatorId, string Kind, long? CheckpointVersion, long? BuildVersion, string Result)
{
    public bool Incompatible => Result.StartsWith(CheckpointDiff.IncompatiblePrefix, StringComparison.Ordinal);
}

/// <summary>
/// Can a build restore a checkpoint, operator by operator: the one comparison behind <c>pipelinedsl diff</c> and the test
/// kit's upgrade check, on the restore-time rules (<see cref="RestoreCompatibility"/>).
/// </summary>
internal static class CheckpointDiff
{
    public const string IncompatiblePrefix = "INCOMPATIBLE: ";

    public static async Task<List<DiffRow>> CompareAsync(CheckpointReader reader, CheckpointSnapshot? newest, PipelineManifest current, CancellationToken ct)
    {
        var stored = newest?.Manifest ?? reader.Manifest;
        var storedState = newest?.Operators.ToDictionary(p => p.Key, p => (p.Value.Version, p.Value.Fingerprint)) ?? new Dictionary<string, (long, string)>();
        var storedSources = newest?.Positions.Keys ?? (IEnumerable<string>)stored.Operators.Where(op => op.Kind == "source").Select(op => op.Id).ToList();
        var decisions = RestoreCompatibility.Decide(stored, storedState, storedSources, current).ToDictionary(d => d.OperatorId, StringComparer.Ordinal);

        // State after the newest snapshot lives in the deltas of the commit files (all of it, if the job was
        // stopped before its first snapshot): judge each delta by the schema it records, with the same rules.
        foreach (var (id, delta) in await reader.ReadDeltaHeadersAfterAsync(newest?.Batch ?? -1, ct).ConfigureAwait(false))
        {
            var d = RestoreCompatibility.DecideOperator(id, delta.Version, stored.Find(id)?.Kind, delta.KeySchema ?? "", delta.ValueSchema ?? "", null, current);
            if (!decisions.TryGetValue(id, out var before) || before.Action != StateAction.Incompatible) decisions[id] = d;
        }

        var rows = new List<DiffRow>();
        foreach (string id in stored.Operators.Select(op => op.Id).Union(current.Operators.Select(op => op.Id)).Union(decisions.Keys).Distinct().OrderBy(i => i, StringComparer.Ordinal))
        {
            var was = stored.Find(id);
            var now = current.Find(id);
            string result = decisions.TryGetValue(id, out var d)
                ? d.Action switch
                {
                    StateAction.Keep => "kept",
                    StateAction.Migrate => $"migrated from version {d.StoredVersion}",
                    StateAction.Discard => "discarded (starts empty)",
                    StateAction.Retired => "retired (dropped)",
                    _ => IncompatiblePrefix + d.Problem,
                }
                : was is null ? "new"
                : now is null ? "removed (held no state)"
                : "kept";
            rows.Add(new DiffRow(id, (now ?? was)?.Kind ?? "", was?.Version, now?.Version, result));
        }

        return rows;
    }
}
