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
        foreach (var (id, (version, fingerprint)) in storedState.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var old = stored?.Find(id);
            decisions.Add(DecideOperator(id, version, old?.Kind, old?.StateSchema?.KeySchema, old?.StateSchema?.ValueSchema, fingerprint, current, old));
        }

        var retired = new HashSet<string>(current.Retired, StringComparer.Ordinal);
        var sources = new HashSet<string>(current.Operators.Where(o => o.Kind == "source").Select(o => o.Id), StringComparer.Ordinal);
        foreach (var source in storedSources.Where(s => !sources.Contains(s)).OrderBy(s => s, StringComparer.Ordinal))
        {
            decisions.Add(retired.Contains(source)
                ? new StateDecision(source, StateAction.Retired, 0, null)
                : Problem(source, 0, $"source '{source}' has positions in the checkpoint but is not in this build. Declare [RetiredOperator(\"{source}\")] to drop them, or bring the source back."));
        }

        return decisions;
    }

    /// <summary>
    /// The decision for one operator's stored state (from a snapshot or a batch delta): what the checkpoint
    /// says about it (version, and where known its kind, key schema and value schema) against this build.
    /// </summary>
    public static StateDecision DecideOperator(
        string id, long version, string? storedKind, string? storedKeySchema, string? storedValueSchema, string? storedFingerprint, PipelineManifest current,
        OperatorManifest? storedEntry = null)
    {
        // The stored entry's properties describe this state only if they were recorded at the state's version.
        if (storedEntry is not null && storedEntry.Version != version) storedEntry = null;
        var entry = current.Find(id);
        if (entry is null || entry.StateSchema is null)
        {
            if (current.Retired.Contains(id)) return new StateDecision(id, StateAction.Retired, version, null);
            if (entry is null)
                return Problem(id, version, $"operator '{id}' holds state in the checkpoint but is not in this build. Declare [RetiredOperator(\"{id}\")] on the pipeline class to drop that state, or bring the operator back.");
            return Problem(id, version, $"operator '{id}' held state as '{storedKind ?? "a stateful operator"}' and is now a '{entry.Kind}'. Give the new operator a new id and declare [RetiredOperator(\"{id}\")].");
        }

        if (storedKind is not null && storedKind != entry.Kind)
            return Problem(id, version, $"operator '{id}' was a '{storedKind}' and is now a '{entry.Kind}'. Give the new operator a new id and declare [RetiredOperator(\"{id}\")].");

        bool discard = entry.DiscardsStateFrom.Contains((int)version);
        string? keyChange = storedKeySchema is not null && storedKeySchema != entry.StateSchema.KeySchema
            ? $"its key type changed from {storedKeySchema} to {entry.StateSchema.KeySchema}; keys cannot be migrated. Use a new operator id and declare [RetiredOperator(\"{id}\")]."
            : null;
        if (keyChange is null && storedEntry is not null && OperatorCompatibility.KeyMemberChange(storedEntry.Property, entry.Property) is { } rekeyed)
            keyChange = $"{rekeyed}. Keyed state cannot be migrated to another key: bump its Version and declare [DiscardState(\"{id}\", FromVersion = {version})], or use a new operator id and declare [RetiredOperator(\"{id}\")].";

        if (version == entry.Version)
        {
            string? change = keyChange;
            if (change is null && storedEntry is not null && OperatorCompatibility.PropertyChange(entry.Kind, storedEntry.Property, entry.Property) is { } property)
                change = $"{property}. Bump its Version and declare [DiscardState(\"{id}\", FromVersion = {version})] to start its state empty, or use a new operator id and declare [RetiredOperator(\"{id}\")].";
            if (change is null && storedValueSchema is not null)
            {
                string? reason = SchemaCompatibility.Check(storedValueSchema, entry.StateSchema.ValueSchema);
                if (reason is not null)
                    change = $"its state schema changed incompatibly at version {version}: {reason}. Bump its Version and add a [StateMigration(\"{id}\", FromVersion = {version})] method, or declare [DiscardState(\"{id}\", FromVersion = {version})].";
            }
            else if (change is null && storedFingerprint is { Length: > 0 } && storedFingerprint != entry.StateSchema.Fingerprint)
            {
                change = $"its state schema fingerprint changed at version {version} ({storedFingerprint} to {entry.StateSchema.Fingerprint}).";
            }

            return change is null ? new StateDecision(id, StateAction.Keep, version, null) : Problem(id, version, $"operator '{id}': {change}");
        }

        if (version < entry.Version)
        {
            if (discard) return new StateDecision(id, StateAction.Discard, version, null);
            if (keyChange is not null) return Problem(id, version, $"operator '{id}': {keyChange}");
            if (entry.MigratesFrom.Contains((int)version)) return new StateDecision(id, StateAction.Migrate, version, null);
            return Problem(id, version,
                $"operator '{id}' is at version {entry.Version} but the checkpoint holds its state at version {version}. Add a [StateMigration(\"{id}\", FromVersion = {version})] method, or declare [DiscardState(\"{id}\", FromVersion = {version})] to start it empty.");
        }

        return Problem(id, version, $"the checkpoint holds version {version} of operator '{id}', newer than this build's version {entry.Version}. Run the build that wrote it, or a newer one.");
    }

    private static StateDecision Problem(string id, long version, string problem) => new(id, StateAction.Incompatible, version, problem);
}
