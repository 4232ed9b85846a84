using System;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// The one rule for names inside a checkpoint, kept by every store: '/'-separated segments such as
/// <c>metadata</c> or <c>offsets/0000000000000000042</c>, none of them empty, <c>.</c> or <c>..</c>, no leading
/// '/', no '\' and no NUL, so that a name can never reach outside the checkpoint.
/// </summary>
internal static class CheckpointNames
{
    /// <summary>Returns <paramref name="name"/>, or throws <see cref="ArgumentException"/> naming the rule it breaks.</summary>
    public static string Check(string name, string parameter = "name")
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException("A checkpoint entry name must not be empty.", parameter);
        if (name.IndexOfAny(new[] { '\\', '\0' }) >= 0)
            throw new ArgumentException($"Invalid checkpoint entry name '{name}': use '/' between segments, and no NUL.", parameter);
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..")
                throw new ArgumentException($"Invalid checkpoint entry name '{name}': every '/'-separated segment must be a plain name (not empty, '.' or '..').", parameter);
        }

        return name;
    }
}
