using System;
using System.Collections.Generic;
using System.Linq;
using PipelineDsl.Graph;

namespace PipelineDsl.Execution;

/// <summary>What happens to one stateful operator's state when a checkpoint is restored.</summary>
internal enum StateAction
{
    /// <summary>Restored as it is (same version, compatible schema).</summary>
    Keep,
    /// <summary>Decoded through the declared migrations from its version.</summary>
    Migrate,
    /// <summary>Dropped: the build declared [DiscardState] for that version.</summary>
    Discard,
    /// <summary>Dropped: the operator was retired.</summary>
    Retired,
    /// <summary>Cannot be restored by this build.</summary>
    Incompatible,
}

internal sealed record StateDecision(string OperatorId, StateAction Action, long StoredVersion, string? Problem);

/// <summary>
/// Compares what a checkpoint holds (the manifest it was written with, each operator's state version, each
/// source) with the running build, before any state is touched. Every problem is collected, so the user
/// gets one report that lists each operator and its fix.
/// </summary>
internal static class RestoreCompatibility
{
    public static List<StateDecision> Decide(
        PipelineManifest? stored,
        IReadOnlyDictionary<string, (long Version, string Fingerprint)> storedState,
        IEnumerable<string> storedSources,
        PipelineManifest current)
    {
        var decisions = new List<StateDecision>();
        var retired = new HashSet<string>(current.Retired, StringComparer.Ordinal);
        foreach (var (id, (version, fingerprint)) in storedState.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var entry = current.Find(id);
            var old = stored?.Find(id);
            if (entry is null || entry.StateSchema is null)
            {
                if (retired.Contains(id))
                    decisions.Add(new StateDecision(id, StateAction.Retired, version, null));
                else if (entry is null)
                    decisions.Add(Problem(id, version, $"operator '{id}' holds state in the checkpoint but is not in this build. Declare [RetiredOperator(\"{id}\")] on the pipeline class to drop that state, or bring the operator back."));
                else
                    decisions.Add(Problem(id, version, $"operator '{id}' held state as '{old?.Kind ?? "a stateful operator"}' and is now a '{entry.Kind}'. Give the new operator a new id and declare [RetiredOperator(\"{id}\")]."));
                continue;
            }

            string? keyChange = old?.StateSchema is { } os && entry.StateSchema is { } ns && os.KeySchema != ns.KeySchema
                ? $"its key type changed from {os.KeySchema} to {ns.KeySchema}; keys cannot be migrated. Use a new operator id and declare [RetiredOperator(\"{id}\")]."
                : null;
            if (old is not null && old.Kind != entry.Kind)
            {
                decisions.Add(Problem(id, version, $"operator '{id}' was a '{old.Kind}' and is now a '{entry.Kind}'. Give the new operator a new id and declare [RetiredOperator(\"{id}\")]."));
            }
            else if (version == entry.Version)
            {
                string? schemaChange = keyChange;
                if (schemaChange is null && old?.StateSchema is { } oldSchema && entry.StateSchema is { } newSchema)
                {
                    string? reason = SchemaCompatibility.Check(oldSchema.ValueSchema, newSchema.ValueSchema);
                    if (reason is not null)
                        schemaChange = $"its state schema changed incompatibly at version {version}: {reason}. Bump its Version and add a [StateMigration(\"{id}\", FromVersion = {version})] method, or declare [DiscardState(\"{id}\", FromVersion = {version})].";
                }
                else if (schemaChange is null && old is null && fingerprint != (entry.StateSchema?.Fingerprint ?? ""))
                {
                    schemaChange = $"its state schema fingerprint changed at version {version} ({fingerprint} to {entry.StateSchema?.Fingerprint}).";
                }

                decisions.Add(schemaChange is null ? new StateDecision(id, StateAction.Keep, version, null) : Problem(id, version, $"operator '{id}': {schemaChange}"));
            }
            else if (version < entry.Version)
            {
                bool discard = entry.DiscardsStateFrom.Contains((int)version);
                if (keyChange is not null && !discard)
                    decisions.Add(Problem(id, version, $"operator '{id}': {keyChange}"));
                else if (entry.MigratesFrom.Contains((int)version) && keyChange is null)
                    decisions.Add(new StateDecision(id, StateAction.Migrate, version, null));
                else if (discard)
                    decisions.Add(new StateDecision(id, StateAction.Discard, version, null));
                else
                    decisions.Add(Problem(id, version,
                        $"operator '{id}' is at version {entry.Version} but the checkpoint holds its state at version {version}. Add a [StateMigration(\"{id}\", FromVersion = {version})] method, or declare [DiscardState(\"{id}\", FromVersion = {version})] to start it empty."));
            }
            else
            {
                decisions.Add(Problem(id, version, $"the checkpoint holds version {version} of operator '{id}', newer than this build's version {entry.Version}. Run the build that wrote it, or a newer one."));
            }
        }

        var sources = new HashSet<string>(current.Operators.Where(o => o.Kind == "source").Select(o => o.Id), StringComparer.Ordinal);
        foreach (var source in storedSources.Where(s => !sources.Contains(s)).OrderBy(s => s, StringComparer.Ordinal))
        {
            decisions.Add(retired.Contains(source)
                ? new StateDecision(source, StateAction.Retired, 0, null)
                : Problem(source, 0, $"source '{source}' has positions in the checkpoint but is not in this build. Declare [RetiredOperator(\"{source}\")] to drop them, or bring the source back."));
        }

        return decisions;
    }

    private static StateDecision Problem(string id, long version, string problem) => new(id, StateAction.Incompatible, version, problem);
}
