using System.Reflection;

namespace PipelineDsl.IntegrationTests;

/// <summary>The ClicksPerUser job (or another test-built program) as a real child process (see <see cref="ChildProcess"/>).</summary>
internal static class SampleProcess
{
    private static readonly string Assembly = typeof(SampleProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "SampleAssembly").Value!;

    public static ChildProcess Start(IEnumerable<string> args, IDictionary<string, string>? environment = null, string? workingDirectory = null) =>
        ChildProcess.Start(Assembly, args, environment, workingDirectory);

    /// <summary>Starts another .NET program (a test-built app) the same way.</summary>
    public static ChildProcess StartAssembly(string assembly, IEnumerable<string> args, string? workingDirectory = null) => ChildProcess.Start(assembly, args, workingDirectory: workingDirectory);

    /// <summary>
    /// Starts the main job as a service (<c>serve</c>) on 127.0.0.1 with a port of the system's choice, plus
    /// <paramref name="args"/>; returns it with the base address it printed once listening.
    /// </summary>
    public static async Task<(ChildProcess Job, string Url)> StartServeAsync(IEnumerable<string> args, TimeSpan timeout)
    {
        var job = Start(new[] { "serve", "--urls", "http://127.0.0.1:0" }.Concat(args));
        string url = "";
        await Eventually.UntilAsync(() => (url = System.Text.RegularExpressions.Regex.Match(job.Stdout, @"listening on (http://127\.0\.0\.1:\d+)").Groups[1].Value).Length > 0 || job.HasExited,
            timeout, "the service's address");
        Assert.False(job.HasExited, job.Output);
        return (job, url);
    }

    /// <summary>Runs to the end and asserts success.</summary>
    public static string RunToCompletion(IEnumerable<string> args, TimeSpan timeout)
    {
        using var p = Start(args);
        int code = p.WaitForExit(timeout);
        Assert.True(code == 0, $"exit code {code}\n{p.Output}");
        return p.Stdout;
    }
}
