using System;
using System.Collections.Generic;
using System.Linq;
using PipelineDsl.Graph;

namespace PipelineDsl.Execution;

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
        var stored = new StoredState
        {
            Kind = storedKind,
            Version = version,
            KeySchema = storedKeySchema,
            ValueSchema = storedValueSchema,
            Fingerprint = storedFingerprint,
            Properties = storedEntry is null ? null : storedEntry.Property,
        };
        var now = entry is null ? null : new CurrentState
        {
            Kind = entry.Kind,
            KeepsState = entry.StateSchema is not null,
            Version = entry.Version,
            KeySchema = entry.StateSchema?.KeySchema,
            ValueSchema = entry.StateSchema?.ValueSchema,
            Fingerprint = entry.StateSchema?.Fingerprint,
            Properties = entry.Property,
            MigratesFrom = v => entry.MigratesFrom.Contains(v),
            DiscardsFrom = v => entry.DiscardsStateFrom.Contains(v),
        };
        bool retired = current.Retired.Contains(id);
        var ruling = StateCompatibility.Decide(stored, now, retired);
        if (ruling.Action != StateAction.Incompatible) return new StateDecision(id, ruling.Action, version, null);

        // A retired operator that is still in the build (as another kind) is dropped, not an error.
        if (retired && ruling.Conflict == StateConflict.KindChanged && (entry is null || entry.StateSchema is null)) return new StateDecision(id, StateAction.Retired, version, null);
        return Problem(id, version, ruling.Conflict switch
        {
            StateConflict.Removed =>
                $"operator '{id}' holds state in the checkpoint but is not in this build. Declare [RetiredOperator(\"{id}\")] on the pipeline class to drop that state, or bring the operator back.",
            StateConflict.KindChanged when entry!.StateSchema is null =>
                $"operator '{id}' held state as '{storedKind ?? "a stateful operator"}' and is now a '{entry.Kind}'. Give the new operator a new id and declare [RetiredOperator(\"{id}\")].",
            StateConflict.KindChanged =>
                $"operator '{id}' was a '{storedKind}' and is now a '{entry!.Kind}'. Give the new operator a new id and declare [RetiredOperator(\"{id}\")].",
            StateConflict.NewerThanBuild =>
                $"the checkpoint holds version {version} of operator '{id}', newer than this build's version {entry!.Version}. Run the build that wrote it, or a newer one.",
            StateConflict.KeyTypeChanged =>
                $"operator '{id}': its key type changed from {storedKeySchema} to {entry!.StateSchema!.KeySchema}; keys cannot be migrated. Use a new operator id and declare [RetiredOperator(\"{id}\")].",
            StateConflict.Rekeyed =>
                $"operator '{id}': {ruling.Detail}. Keyed state cannot be migrated to another key: bump its Version and declare [DiscardState(\"{id}\", FromVersion = {version})], or use a new operator id and declare [RetiredOperator(\"{id}\")].",
            StateConflict.PropertyChanged =>
                $"operator '{id}': {ruling.Detail}. Bump its Version and declare [DiscardState(\"{id}\", FromVersion = {version})] to start its state empty, or use a new operator id and declare [RetiredOperator(\"{id}\")].",
            StateConflict.SchemaChanged =>
                $"operator '{id}': its state schema changed incompatibly at version {version}: {ruling.Detail}. Bump its Version and add a [StateMigration(\"{id}\", FromVersion = {version})] method, or declare [DiscardState(\"{id}\", FromVersion = {version})].",
            StateConflict.FingerprintChanged =>
                $"operator '{id}': its state schema fingerprint changed at version {version} ({storedFingerprint} to {entry!.StateSchema!.Fingerprint}).",
            _ =>
                $"operator '{id}' is at version {entry!.Version} but the checkpoint holds its state at version {version}. Add a [StateMigration(\"{id}\", FromVersion = {version})] method, or declare [DiscardState(\"{id}\", FromVersion = {version})] to start it empty.",
        });
    }

    private static StateDecision Problem(string id, long version, string problem) => new(id, StateAction.Incompatible, version, problem);
}
