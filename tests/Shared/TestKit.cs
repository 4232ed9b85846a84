using System.Diagnostics;
using System.Text;

namespace PipelineDsl.Tests.Shared;

/// <summary>A fresh temporary directory per test, removed afterwards (compiled into every test project).</summary>
public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pdsl-" + Guid.NewGuid().ToString("N"));

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

/// <summary>
/// A .NET program as a real child process: started with <c>dotnet</c>, its output captured as it comes (so a
/// chatty child never blocks on a full pipe), killed with SIGKILL like <c>kill -9</c>, or asked to stop.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Queue<string> _lines = new();
    private readonly string? _quitCommand;

    private ChildProcess(string assembly, IEnumerable<string> args, IDictionary<string, string>? environment, string? workingDirectory, string? quitCommand)
    {
        Assert.True(File.Exists(assembly), $"the program is not built at {assembly}");
        _quitCommand = quitCommand;
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = quitCommand is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        start.ArgumentList.Add(assembly);
        foreach (var a in args) start.ArgumentList.Add(a);
        if (environment is not null) foreach (var (k, v) in environment) start.Environment[k] = v;
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stdout)
            {
                _stdout.AppendLine(e.Data);
                _lines.Enqueue(e.Data);
            }
        };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>
    /// Starts <c>dotnet <paramref name="assembly"/> <paramref name="args"/></c>. With <paramref name="quitCommand"/>,
    /// its standard input stays open for <see cref="WriteLine"/>, and disposing sends that command before killing.
    /// </summary>
    public static ChildProcess Start(string assembly, IEnumerable<string> args, IDictionary<string, string>? environment = null, string? workingDirectory = null, string? quitCommand = null) =>
        new(assembly, args, environment, workingDirectory, quitCommand);

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }

    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>Standard output and error, for failure messages.</summary>
    public string Output => $"stdout:\n{Stdout}\nstderr:\n{Stderr}";

    /// <summary>SIGKILL, as kill -9: no handler runs, nothing is flushed.</summary>
    public void KillHard() => _process.Kill(entireProcessTree: true);

    /// <summary>Sends a signal by name (<c>STOP</c>, <c>CONT</c>, <c>TERM</c>), as <c>kill -NAME</c> does.</summary>
    public void Signal(string name)
    {
        using var kill = Process.Start("kill", new[] { "-" + name, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })!;
        kill.WaitForExit();
    }

    public void SendSigterm()
    {
        using var kill = Process.Start("kill", new[] { "-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })!;
        kill.WaitForExit();
    }

    /// <summary>Writes a line to the child's standard input (started with a quit command).</summary>
    public void WriteLine(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>The next line of standard output not yet read by this method; throws <see cref="TimeoutException"/> after <paramref name="timeout"/>.</summary>
    public string ReadLine(TimeSpan timeout)
    {
        string? line = null;
        if (!Eventually.WaitUntil(() =>
            {
                lock (_stdout) return _lines.TryDequeue(out line);
            }, timeout))
            throw new TimeoutException($"no output within {timeout}:\n{Output}");
        return line!;
    }

    /// <summary>Waits for the exit and returns the exit code; kills the child and fails the test after <paramref name="timeout"/>.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            KillHard();
            Assert.Fail($"the program did not exit within {timeout}.\n{Output}");
        }

        _process.WaitForExit(); // drains the output readers
        return _process.ExitCode;
    }

    public bool WaitForOutput(string text, TimeSpan timeout) =>
        Eventually.WaitUntil(() => Stdout.Contains(text, StringComparison.Ordinal) || _process.HasExited, timeout) && Stdout.Contains(text, StringComparison.Ordinal);

    /// <summary>Waits until <paramref name="count"/> stdout lines match (or the process exits).</summary>
    public void WaitForLines(Func<string, bool> match, int count, TimeSpan timeout) =>
        Eventually.WaitUntil(() => _process.HasExited || Stdout.Split('\n').Count(match) >= count, timeout, pollMs: 5);

    private bool _disposed;

    /// <summary>Stops the process if it still runs (its quit command, else SIGKILL). Safe to call more than once, so that a test's finally can dispose what its body may have disposed.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (!_process.HasExited)
        {
            try
            {
                if (_quitCommand is not null)
                {
                    WriteLine(_quitCommand);
                    if (!_process.WaitForExit(5000)) KillHard();
                }
                else
                {
                    KillHard();
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                KillHard();
            }
        }

        _process.Dispose();
    }
}

/// <summary>Polling for a condition that becomes true eventually (a file written by a child, a count reached).</summary>
public static class Eventually
{
    /// <summary>True as soon as <paramref name="condition"/> holds; false when <paramref name="timeout"/> passes first.</summary>
    public static bool WaitUntil(Func<bool> condition, TimeSpan timeout, int pollMs = 20)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > timeout) return false;
            Thread.Sleep(pollMs);
        }

        return true;
    }

    /// <summary>Waits until <paramref name="condition"/> holds; throws <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, int pollMs = 50)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > timeout) throw new TimeoutException($"{what}: not within {timeout}");
            await Task.Delay(pollMs);
        }
    }
}
