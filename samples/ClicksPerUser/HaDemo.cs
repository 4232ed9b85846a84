using System.Diagnostics;
using System.Globalization;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Azure.Testing;

namespace ClicksPerUser;

/// <summary>
/// <c>ha-demo</c>: high availability in one command. Starts Azurite (Azure Blob Storage's emulator) on loopback,
/// runs three replicas of this job on one checkpoint there (<c>--standby</c>, output to blobs too), kills the active
/// replica with SIGKILL every few seconds and starts a new one in its place, shows who is active and every takeover,
/// and at the end compares the output with an uninterrupted run of the same job.
/// </summary>
internal static class HaDemo
{
    public static async Task<int> RunAsync(long records, int kills, TimeSpan killEvery)
    {
        string work = Path.GetFullPath("ha-demo-work");
        if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        string input = Path.Combine(work, "input");
        string self = typeof(HaDemo).Assembly.Location;

        Console.WriteLine($"ha-demo: generating {records:N0} clicks into {input}");
        if (RunToEnd(self, "generate", "--records", records.ToString(CultureInfo.InvariantCulture), "--files", "8", "--users", "20000", "--output", input) != 0) return 1;

        using var azurite = AzuriteServer.Start();
        Console.WriteLine($"ha-demo: Azurite listening on 127.0.0.1:{azurite.Port} (telemetry off); checkpoint and output in its container 'ha-demo'");
        var env = new Dictionary<string, string> { ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.ConnectionString };
        string[] replicaArgs =
        {
            "--input", input, "--azure-container", "ha-demo", "--azure-output", "--standby", "--bounded",
            "--max-records-per-partition", "500", "--takeover-after-ms", "2000",
        };

        var replicas = new List<Replica>();
        int next = 1;
        Replica Start()
        {
            var replica = new Replica(next++, self, replicaArgs, env);
            replicas.Add(replica);
            return replica;
        }

        for (int i = 0; i < 3; i++) Start();
        var clock = Stopwatch.StartNew();
        int killed = 0;
        // Kills follow the job's progress, not only the clock: the active replica is killed once it has run its share
        // of the batches (500 lines of each of 8 files per batch), or after killEvery, whichever comes first, so that
        // every kill lands mid-run however fast the machine processes the input.
        long share = Math.Max(3, records / 4000 / (kills + 2));
        var sinceKill = Stopwatch.StartNew();
        while (killed < kills)
        {
            await Task.Delay(50);
            var active = replicas.FirstOrDefault(r => r.IsActive && !r.HasExited);
            if (active is null)
            {
                if (replicas.All(r => r.HasExited)) break; // done before the last kill
                continue;
            }

            if (active.BatchesSinceActive < share && sinceKill.Elapsed < killEvery) continue;
            sinceKill.Restart();

            Console.WriteLine($"ha-demo: {clock.Elapsed.TotalSeconds,5:F1} s  kill -9 replica {active.Number} (the active one)");
            active.Kill();
            killed++;
            Start();
        }

        foreach (var replica in replicas) replica.WaitForExit();
        Console.WriteLine($"ha-demo: {clock.Elapsed.TotalSeconds,5:F1} s  all replicas done; {killed} active replicas killed");

        // The same job, uninterrupted, with a local checkpoint: the output must be the same, file for file.
        string reference = Path.Combine(work, "reference");
        if (RunToEnd(self, "--input", input, "--checkpoint", Path.Combine(work, "reference-checkpoint"), "--output", reference, "--bounded", "--quiet", "--max-records-per-partition", "500") != 0) return 1;
        var container = new BlobContainerClient(azurite.ConnectionString, "ha-demo", new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06));
        int files = 0, different = 0;
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, "clicks-per-user-output/", default))
        {
            files++;
            string local = Path.Combine(reference, Path.GetFileName(blob.Name));
            var content = (await container.GetBlobClient(blob.Name).DownloadContentAsync()).Value.Content.ToArray();
            if (!File.Exists(local) || !File.ReadAllBytes(local).AsSpan().SequenceEqual(content)) different++;
        }

        int expected = Directory.GetFiles(reference).Length;
        bool same = different == 0 && files == expected;
        Console.WriteLine(same
            ? $"ha-demo: output identical to an uninterrupted run ({files} batch files): nothing lost, nothing twice"
            : $"ha-demo: OUTPUT DIFFERS from an uninterrupted run: {different} of {files} batch files differ, {expected} expected");
        return same ? 0 : 1;
    }

    private static int RunToEnd(string self, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true };
        start.ArgumentList.Add(self);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode;
    }

    /// <summary>One replica: a child process of this job whose standby and takeover lines are shown, prefixed.</summary>
    private sealed class Replica
    {
        private readonly Process _process;

        public Replica(int number, string self, string[] args, Dictionary<string, string> env)
        {
            Number = number;
            var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(self);
            foreach (var arg in args) start.ArgumentList.Add(arg);
            foreach (var (key, value) in env) start.Environment[key] = value;
            _process = Process.Start(start)!;
            _process.OutputDataReceived += (_, e) => Show(e.Data);
            _process.ErrorDataReceived += (_, e) => Show(e.Data);
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
            Console.WriteLine($"ha-demo: replica {Number} started (process {_process.Id})");
        }

        public int Number { get; }

        public bool IsActive { get; private set; }

        public bool HasExited => _process.HasExited;

        private int _batches;
        private int _following;
        private int _batchesSinceActive;

        /// <summary>Batch lines printed since this replica took the checkpoint over.</summary>
        public int BatchesSinceActive => Volatile.Read(ref _batchesSinceActive);

        private void Show(string? line)
        {
            if (line is null) return;
            if (line.Contains("took over the checkpoint", StringComparison.Ordinal)) IsActive = true;
            if (line.StartsWith("batch", StringComparison.Ordinal))
            {
                if (IsActive) Interlocked.Increment(ref _batchesSinceActive);
                // One line in twenty: the active replica's progress, without flooding the screen.
                if (Interlocked.Increment(ref _batches) % 20 != 1) return;
            }
            else if (line.StartsWith("standby: following", StringComparison.Ordinal))
            {
                if (Interlocked.Increment(ref _following) % 5 != 1) return; // a standby reports every second
            }
            else if (!line.StartsWith("standby", StringComparison.Ordinal) && !line.StartsWith("done", StringComparison.Ordinal) && !line.StartsWith("error", StringComparison.Ordinal))
            {
                return;
            }

            Console.WriteLine($"  [replica {Number}] {line}");
        }

        public void Kill()
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        public void WaitForExit() => _process.WaitForExit();
    }
}
