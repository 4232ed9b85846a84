// This file is compiled into both the runtime and the generator (netstandard2.0), so that the build-time
// verdict (PDSL209, PDSL210) and the restore-time verdict (CheckpointIncompatibleException, pipelinedsl diff)
// apply one set of rules. Keep it free of APIs newer than netstandard2.0.
using System;
using System.Collections.Generic;

namespace PipelineDsl.Graph
{

/// <summary>
/// The rule for every property a manifest entry records about a stateful operator, when a build changes it
/// without changing the operator's version. A property is either safe to change (the state means the same
/// under the new value; listed in <see cref="SafeProperties"/> with why) or changes what the stored state
/// means, so that restoring it would lose, mix or misread records without a word: then the build fails
/// (PDSL209/PDSL210) and a restore is refused, and the fix is a new version with [DiscardState] (or a new id).
/// </summary>
internal static class OperatorCompatibility
{
    /// <summary>The manifest properties that must not change at the same version, per operator kind, with why.</summary>
    public static IReadOnlyList<(string Property, string Why)> GuardedProperties(string kind)
    {
        switch (kind)
        {
            case OperatorKinds.Window:
                return new[]
                {
                    ("lengthBatches", "its state holds one value per slide of batches, and the open windows would be combined from slides of the old length"),
                    ("slideBatches", "its state holds one value per slide of batches, and the open windows would be combined from slides of the old slide"),
                };
            case OperatorKinds.EventTimeWindow:
                return new[]
                {
                    ("sizeMs", "its state is kept per pane of gcd(size, slide) ms, so the open windows' records would be lost or mixed"),
                    ("slideMs", "its state is kept per pane of gcd(size, slide) ms, so the open windows' records would be lost or mixed"),
                    ("time", "its open windows hold records placed by the old time member"),
                };
            case OperatorKinds.SessionWindow:
                return new[]
                {
                    ("gapMs", "its open sessions were merged and bounded with the old gap"),
                    ("time", "its open sessions hold records placed by the old time member"),
                };
            case OperatorKinds.Watermark:
                return new[] { ("time", "its stored watermark is the largest value of the old time member") };
            case OperatorKinds.StreamJoin:
                return new[]
                {
                    ("inputs", "its state holds each side's records under the side they came from"),
                    ("leftTime", "its buffered records expire by the old time members"),
                    ("leftEndTime", "its buffered records expire by the old time members"),
                    ("rightTime", "its buffered records expire by the old time members"),
                    ("lowerBoundMs", "records that the old bounds already expired could match under the new ones"),
                    ("upperBoundMs", "records that the old bounds already expired could match under the new ones"),
                };
            default:
                return Array.Empty<(string, string)>();
        }
    }

    /// <summary>Properties that may change at the same version, and why their state is still right.</summary>
    public static readonly IReadOnlyList<(string Property, string Why)> SafeProperties = new[]
    {
        ("idleTimeoutBatches", "every update-state entry stores the batch it was last seen in, whatever the timeout; the new timeout applies from the next batch"),
        ("maxOutOfOrdernessMs", "the watermark stores the largest event time seen; the new delay applies to the next batch, and a watermark never goes back"),
        ("inputs", "for every kind but a stream join, where a record comes from does not change what the state means (types are checked by the state schema)"),
    };

    /// <summary>The members that key an operator's state: changing one re-keys the state.</summary>
    public static readonly IReadOnlyList<string> KeyProperties = new[] { "keyMember", "rightKeyMember" };

    /// <summary>
    /// The first guarded property that differs between the stored entry and the current one, as a sentence
    /// ("its sizeMs changed from 60000 to 120000: …"), or null. A property the stored entry does not record (an
    /// older build's manifest) cannot be compared and is not reported.
    /// </summary>
    public static string? PropertyChange(string kind, Func<string, string?> stored, Func<string, string?> current)
    {
        foreach (var (property, why) in GuardedProperties(kind))
        {
            string? before = stored(property), after = current(property);
            if (before is null || after is null || before == after) continue;
            return "its " + property + " changed from " + before + " to " + after + ": " + why;
        }

        return null;
    }

    /// <summary>The key member that differs (e.g. "keyMember changed from CustomerId to Region"), or null.</summary>
    public static string? KeyMemberChange(Func<string, string?> stored, Func<string, string?> current)
    {
        foreach (var property in KeyProperties)
        {
            string? before = stored(property), after = current(property);
            if (before is null || after is null || before == after) continue;
            return "it is keyed by " + after + " instead of " + before + " (" + property + "): its state holds keys of the old member, which new records would never meet";
        }

        return null;
    }

    /// <summary>The canonical text of a property value as both sides compare it: strings and numbers as written, arrays joined by commas.</summary>
    public static string Canonical(IEnumerable<string> items) => string.Join(",", items);
}

}
