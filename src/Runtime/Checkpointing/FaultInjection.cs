using System;

namespace PipelineDsl.Checkpointing;

/// <summary>
/// The crash-injection seam for tests of the checkpoint protocol: kills the process (SIGKILL, like
/// <c>kill -9</c>) at a named point, so crash tests hit its narrow windows deterministically, in a real
/// child process. Set <c>PIPELINEDSL_CRASH_AT</c> to <c>point</c> or <c>point@substring-of-the-detail</c>.
/// Points: <c>after-offsets</c>, <c>after-sinks</c>, <c>after-commit</c> (detail: the batch number), and
/// <c>checkpoint-write-before-fsync</c>, <c>checkpoint-write-before-rename</c> (detail: the file's path).
/// Unset in production: one environment read per process, then a null check per point.
/// </summary>
internal static class FaultInjection
{
    private static readonly string? Spec = Environment.GetEnvironmentVariable("PIPELINEDSL_CRASH_AT");

    public static void Hit(string point, string detail = "")
    {
        if (Spec is null) return;
        int at = Spec.IndexOf('@');
        string name = at < 0 ? Spec : Spec[..at];
        string filter = at < 0 ? "" : Spec[(at + 1)..];
        if (name == point && detail.Contains(filter, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"PIPELINEDSL_CRASH_AT: killing the process at {point} {detail}");
            Console.Error.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
        }
    }
}
