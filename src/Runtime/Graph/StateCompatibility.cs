// This file is compiled into both the runtime and the generator (netstandard2.0): the build-time verdict against
// the lock file (PDSL2xx) and the restore-time verdict (CheckpointIncompatibleException, pipelinedsl diff) are
// one decision, rendered two ways. Keep it free of APIs newer than netstandard2.0.
using System;

namespace PipelineDsl.Graph
{

/// <summary>What happens to one stateful operator's stored state under a build.</summary>
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

/// <summary>Why stored state cannot be restored (with <see cref="StateAction.Incompatible"/>).</summary>
internal enum StateConflict
{
    None,
    /// <summary>The operator is gone from the build and not retired.</summary>
    Removed,
    /// <summary>The operator is of another kind now, or keeps no state any more.</summary>
    KindChanged,
    /// <summary>The stored state is of a newer version than the build's operator.</summary>
    NewerThanBuild,
    /// <summary>The key's type changed (keys cannot be migrated).</summary>
    KeyTypeChanged,
    /// <summary>The state is keyed by another member now (<see cref="StateRuling.Detail"/> says which).</summary>
    Rekeyed,
    /// <summary>A property that changes what the state means changed at the same version (<see cref="StateRuling.Detail"/>).</summary>
    PropertyChanged,
    /// <summary>The value schema changed incompatibly at the same version (<see cref="StateRuling.Detail"/>: why).</summary>
    SchemaChanged,
    /// <summary>Only the schema fingerprint is known, and it changed at the same version.</summary>
    FingerprintChanged,
    /// <summary>The version went up without a migration from the stored version (and no discard).</summary>
    NoMigration,
}

/// <summary>The decision for one operator's stored state.</summary>
internal readonly struct StateRuling
{
    public StateRuling(StateAction action, StateConflict conflict = StateConflict.None, string? detail = null)
    {
        Action = action;
        Conflict = conflict;
        Detail = detail;
    }

    public StateAction Action { get; }

    public StateConflict Conflict { get; }

    /// <summary>The sub-rule's sentence for <see cref="StateConflict.Rekeyed"/>, <see cref="StateConflict.PropertyChanged"/> and <see cref="StateConflict.SchemaChanged"/>.</summary>
    public string? Detail { get; }
}

/// <summary>What a checkpoint (or the lock file) recorded about one operator's state.</summary>
internal sealed class StoredState
{
    /// <summary>Its kind, when recorded.</summary>
    public string? Kind { get; set; }

    public long Version { get; set; }

    public string? KeySchema { get; set; }

    public string? ValueSchema { get; set; }

    /// <summary>The schema fingerprint, when only that is recorded.</summary>
    public string? Fingerprint { get; set; }

    /// <summary>Its manifest properties as recorded at <see cref="Version"/>; null when they are not known for that version.</summary>
    public Func<string, string?>? Properties { get; set; }
}

/// <summary>What the current build declares about that operator (null: not in the build).</summary>
internal sealed class CurrentState
{
    public string Kind { get; set; } = "";

    /// <summary>False when the operator keeps no state in this build.</summary>
    public bool KeepsState { get; set; }

    public int Version { get; set; }

    /// <summary>The state's key schema (null when not known, for example while the build has errors).</summary>
    public string? KeySchema { get; set; }

    /// <summary>The state's value schema (null when not known).</summary>
    public string? ValueSchema { get; set; }

    public string? Fingerprint { get; set; }

    public Func<string, string?> Properties { get; set; } = _ => null;

    public Func<int, bool> MigratesFrom { get; set; } = _ => false;

    public Func<int, bool> DiscardsFrom { get; set; } = _ => false;
}

/// <summary>
/// The one decision table for stored state against a build: keep, migrate, discard, retired, or incompatible
/// and why. The generator renders it as PDSL2xx diagnostics against the lock file; the runtime as the lines of
/// a <c>CheckpointIncompatibleException</c> and as <c>pipelinedsl diff</c> rows.
/// </summary>
internal static class StateCompatibility
{
    public static StateRuling Decide(StoredState stored, CurrentState? current, bool retired)
    {
        if (current is null) return retired ? new StateRuling(StateAction.Retired) : Conflict(StateConflict.Removed);
        if (!current.KeepsState || (stored.Kind is not null && stored.Kind != current.Kind)) return Conflict(StateConflict.KindChanged);
        if (stored.Version > current.Version) return Conflict(StateConflict.NewerThanBuild);

        bool upgraded = stored.Version < current.Version;
        if (upgraded && current.DiscardsFrom((int)stored.Version)) return new StateRuling(StateAction.Discard);

        // Keys: neither a new key type nor a new key member can be migrated.
        if (stored.KeySchema is not null && current.KeySchema is not null && stored.KeySchema != current.KeySchema) return Conflict(StateConflict.KeyTypeChanged);
        if (stored.Properties is not null && OperatorCompatibility.KeyMemberChange(stored.Properties, current.Properties) is { } rekeyed)
            return Conflict(StateConflict.Rekeyed, rekeyed);

        if (upgraded)
        {
            if (current.ValueSchema is null) return new StateRuling(StateAction.Keep); // not known (a build with errors): nothing to judge
            return current.MigratesFrom((int)stored.Version) ? new StateRuling(StateAction.Migrate) : Conflict(StateConflict.NoMigration);
        }

        // The same version: the state must mean the same under this build.
        if (stored.Properties is not null && OperatorCompatibility.PropertyChange(current.Kind, stored.Properties, current.Properties) is { } property)
            return Conflict(StateConflict.PropertyChanged, property);
        if (current.ValueSchema is null) return new StateRuling(StateAction.Keep);
        if (stored.ValueSchema is not null)
        {
            string? reason = SchemaCompatibility.Check(stored.ValueSchema, current.ValueSchema);
            return reason is null ? new StateRuling(StateAction.Keep) : Conflict(StateConflict.SchemaChanged, reason);
        }

        if (stored.Fingerprint is { Length: > 0 } && current.Fingerprint is not null && stored.Fingerprint != current.Fingerprint) return Conflict(StateConflict.FingerprintChanged);
        return new StateRuling(StateAction.Keep);
    }

    private static StateRuling Conflict(StateConflict conflict, string? detail = null) => new(StateAction.Incompatible, conflict, detail);
}

}
