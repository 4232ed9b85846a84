using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace PipelineDsl.IntegrationTests;

/// <summary>The ClicksPerUser job as a real child process: started, watched, killed with SIGKILL.</summary>
internal sealed class SampleProcess : IDisposable
{
    private static readonly string Assembly = typeof(SampleProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "SampleAssembly").Value!;

    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private SampleProcess(string assembly, IEnumerable<string> args, IDictionary<string, string>? environment, string? workingDirectory = null)
    {
        Assert.True(File.Exists(assembly), $"the program is not built at {assembly}");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        start.ArgumentList.Add(assembly);
        foreach (var a in args) start.ArgumentList.Add(a);
        if (environment is not null) foreach (var (k, v) in environment) start.Environment[k] = v;
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_stdout) _stdout.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public static SampleProcess Start(IEnumerable<string> args, IDictionary<string, string>? environment = null) => new(Assembly, args, environment);

    /// <summary>Starts another .NET program (a test-built app) the same way.</summary>
    public static SampleProcess StartAssembly(string assembly, IEnumerable<string> args, string? workingDirectory = null) => new(assembly, args, null, workingDirectory);

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }

    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>SIGKILL, as kill -9: no handler runs, nothing is flushed.</summary>
    public void KillHard() => _process.Kill(entireProcessTree: true);

    public void SendSigterm() => Process.Start("kill", new[] { "-TERM", _process.Id.ToString() })!.WaitForExit();

    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            KillHard();
            Assert.Fail($"the sample did not exit within {timeout}.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }

        _process.WaitForExit(); // drains the output readers
        return _process.ExitCode;
    }

    public bool WaitForOutput(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Stdout.Contains(text, StringComparison.Ordinal)) return true;
            if (_process.HasExited) return Stdout.Contains(text, StringComparison.Ordinal);
            Thread.Sleep(20);
        }

        return false;
    }

    /// <summary>Waits until <paramref name="count"/> stdout lines match (or the process exits).</summary>
    public void WaitForLines(Func<string, bool> match, int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            if (Stdout.Split('\n').Count(match) >= count) return;
            Thread.Sleep(5);
        }
    }

    /// <summary>Runs to the end and asserts success.</summary>
    public static string RunToCompletion(IEnumerable<string> args, TimeSpan timeout)
    {
        using var p = Start(args);
        int code = p.WaitForExit(timeout);
        Assert.True(code == 0, $"exit code {code}\nstdout:\n{p.Stdout}\nstderr:\n{p.Stderr}");
        return p.Stdout;
    }

    public void Dispose()
    {
        if (!_process.HasExited) KillHard();
        _process.Dispose();
    }
}

internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pdsl-it-" + Guid.NewGuid().ToString("N"));

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
