using System;
using System.Diagnostics;
using System.IO;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Azure.Testing;

/// <summary>
/// Azurite's blob service (Microsoft's Azure Storage emulator) as a real child process, bound to 127.0.0.1 on an
/// ephemeral port, with telemetry off (without <c>--disableTelemetry</c> it contacts a cloud metadata address)
/// and its data in a folder of its own, so that it survives <see cref="Stop"/> and <see cref="Restart"/> as a
/// real outage would. For tests, samples and development only.
/// </summary>
/// <remarks>
/// Azurite comes from npm (<c>npm install azurite</c>; this repository pins it in <c>tools/azurite</c>, installed by
/// <c>scripts/install-azurite.sh</c>). <see cref="EntryPoint"/> says where it is looked for.
/// </remarks>
public sealed partial class AzuriteServer : IDisposable
{
    /// <summary>Azurite's well-known development account name (public, documented by Microsoft).</summary>
    public const string AccountName = "devstoreaccount1";

    /// <summary>Azurite's well-known development account key (public, documented by Microsoft; not a secret).</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly string _location;
    private readonly bool _ownsLocation;
    private Process? _process;

    private AzuriteServer(string location, bool ownsLocation)
    {
        _location = location;
        _ownsLocation = ownsLocation;
    }

    /// <summary>The port the blob service listens on, on 127.0.0.1.</summary>
    public int Port { get; private set; }

    /// <summary>The connection string of the development account on this server.</summary>
    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};BlobEndpoint=http://127.0.0.1:{Port}/{AccountName};";

    /// <summary>The server's process id while it runs (to check, for example, which addresses it talks to).</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>True while the server process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Starts a server with its data in a new temporary folder (removed by <see cref="Dispose"/>).</summary>
    public static AzuriteServer Start()
    {
        string location = Path.Combine(Path.GetTempPath(), "pdsl-azurite-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(location);
        var server = new AzuriteServer(location, ownsLocation: true);
        server.Launch(port: 0);
        return server;
    }

    /// <summary>
    /// The blob service's script (<c>azurite/dist/src/blob/main.js</c>): the environment variable
    /// <c>PIPELINEDSL_AZURITE</c>, else <c>tools/azurite/node_modules/azurite</c> in a folder above the program or
    /// the current directory (this repository's pinned copy), else <c>node_modules/azurite</c> there (a project's own
    /// <c>npm install azurite</c>).
    /// </summary>
    public static string EntryPoint()
    {
        if (Environment.GetEnvironmentVariable("PIPELINEDSL_AZURITE") is { Length: > 0 } configured)
        {
            return File.Exists(configured) ? configured : throw new InvalidOperationException($"PIPELINEDSL_AZURITE names '{configured}', which does not exist: point it at Azurite's dist/src/blob/main.js.");
        }

        string main = Path.Combine("azurite", "dist", "src", "blob", "main.js");
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string pinned = Path.Combine(dir.FullName, "tools", "azurite");
                if (File.Exists(Path.Combine(pinned, "node_modules", main))) return Path.Combine(pinned, "node_modules", main);
                if (File.Exists(Path.Combine(pinned, "package.json")))
                    throw new InvalidOperationException($"Azurite is not installed in {pinned}: run scripts/install-azurite.sh (it needs Node.js and npm).");
                if (File.Exists(Path.Combine(dir.FullName, "node_modules", main))) return Path.Combine(dir.FullName, "node_modules", main);
            }
        }

        throw new InvalidOperationException($"Azurite was not found above {AppContext.BaseDirectory}: install it (npm install azurite) or set PIPELINEDSL_AZURITE to its dist/src/blob/main.js.");
    }

    private void Launch(int port)
    {
        var start = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     EntryPoint(), "--blobHost", "127.0.0.1", "--blobPort", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--location", _location, "--disableTelemetry", "--silent", "--loose",
                 })
            start.ArgumentList.Add(arg);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("Azurite needs Node.js: 'node' could not be started (" + e.Message + ").", e);
        }

        var output = new System.Text.StringBuilder();
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            var match = ListeningLine().Match(e.Data);
            if (match.Success) listening.TrySetResult(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) lock (output) output.AppendLine(e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!listening.Task.Wait(TimeSpan.FromSeconds(60)))
        {
            Kill(process);
            string seen;
            lock (output) seen = output.ToString();
            throw new InvalidOperationException($"Azurite did not report a listening port within 60 s. Its output:\n{seen}");
        }

        _process = process;
        Port = listening.Task.Result;
    }

    [GeneratedRegex(@"successfully listens on http://127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();

    /// <summary>
    /// Stops the server: the store is gone until <see cref="Restart"/>. SIGTERM, so that Azurite saves its
    /// metadata (it keeps blob metadata in memory and saves it every few seconds: a SIGKILL loses the latest
    /// writes, which Azure itself never does once it has acknowledged them); SIGKILL if it does not exit.
    /// </summary>
    public void Stop()
    {
        if (_process is { } process)
        {
            try
            {
                using (var term = Process.Start("kill", new[] { "-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) })!) term.WaitForExit();
                process.WaitForExit(15_000);
            }
            catch (InvalidOperationException)
            {
            }

            Kill(process);
        }

        _process = null;
    }

    /// <summary>Starts the server again on the same port with the same data.</summary>
    public void Restart()
    {
        Stop();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                Launch(Port);
                return;
            }
            catch (InvalidOperationException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200); // the port may linger a moment after the kill
            }
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }

        process.Dispose();
    }

    /// <summary>Stops the server and removes its data folder.</summary>
    public void Dispose()
    {
        Stop();
        if (!_ownsLocation) return;
        try
        {
            Directory.Delete(_location, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
