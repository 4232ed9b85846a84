using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using PipelineDsl.Azure.Testing;

namespace PipelineDsl.Bench;

/// <summary>
/// Takeover time with hot standbys: two replicas of the main job (samples/ClicksPerUser, <c>--standby</c>) on one
/// checkpoint in Azure Blob Storage (Azurite on loopback), continuous; the active one is killed with SIGKILL and
/// the time until the other's first new batch is measured (its batch lines are timestamped as they arrive); a new
/// replica replaces the dead one, and so on, for each <c>TakeoverAfter</c> setting (the silence after which a holder
/// counts as gone, which bounds detection).
/// </summary>
public static class TakeoverBenchmark
{
    public static void Run(int takeovers, IReadOnlyList<int> takeoverAfterMs, string temp)
    {
        string sample = typeof(TakeoverBenchmark).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "Sample").Value!;
        string input = Path.Combine(temp, "takeover-input");
        using (var generate = Process.Start("dotnet", new[] { sample, "generate", "--records", "4000000", "--files", "8", "--users", "20000", "--output", input })!) generate.WaitForExit();

        using var azurite = AzuriteServer.Start();
        Console.WriteLine("## Takeover with hot standbys (SIGKILL of the active replica -> first new batch of the next)");
        Console.WriteLine();
        Console.WriteLine($"Two replicas of the main job, checkpoint on Azurite (loopback), continuous, 100 ms batches; {takeovers} takeovers per setting; load average before: {File.ReadAllText("/proc/loadavg").Split(' ')[0]}.");
        Console.WriteLine();
        Console.WriteLine("| TakeoverAfter | takeovers | median s | max s | median / TakeoverAfter |");
        Console.WriteLine("|---:|---:|---:|---:|---:|");
        foreach (int after in takeoverAfterMs)
        {
            var times = new List<double>();
            string container = "takeover-" + after.ToString(CultureInfo.InvariantCulture);
            var replicas = new List<Replica>();
            Replica Start() => new(sample, azurite.ConnectionString, new[]
            {
                "--input", input, "--azure-container", container, "--azure-output", "--standby", "--continuous", "--batch-interval-ms", "100",
                "--max-records-per-partition", "100", "--takeover-after-ms", after.ToString(CultureInfo.InvariantCulture),
            });
            replicas.Add(Start());
            replicas.Add(Start());
            try
            {
                for (int i = 0; i < takeovers; i++)
                {
                    var active = WaitFor(() => replicas.FirstOrDefault(r => r.Active && r.BatchesSinceTakeover >= 5));
                    var standby = replicas.First(r => r != active);
                    WaitFor(() => standby.Following ? standby : null); // it has caught up with the checkpoint once
                    long killedAt = Stopwatch.GetTimestamp();
                    active.Kill();
                    replicas.Remove(active);
                    replicas.Add(Start());
                    long firstBatch = WaitFor(() => standby.FirstBatchAfterTakeover is long t ? (long?)t : null)!.Value;
                    times.Add(Stopwatch.GetElapsedTime(killedAt, firstBatch).TotalSeconds);
                }
            }
            finally
            {
                foreach (var r in replicas) r.Kill();
            }

            times.Sort();
            double median = times[times.Count / 2];
            Console.WriteLine($"| {after} ms | {times.Count} | {median:F2} | {times[^1]:F2} | {median / (after / 1000.0):F2} |");
        }

        Console.WriteLine();
    }

    private static T WaitFor<T>(Func<T?> probe)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            if (probe() is { } value) return value;
            Thread.Sleep(5);
        }

        throw new TimeoutException("a replica did not reach the expected state within 2 minutes");
    }

    /// <summary>A replica of the main job whose stdout lines are read as they arrive, with the time of the first new batch after it took over.</summary>
    private sealed class Replica
    {
        private readonly Process _process;
        private int _batches;

        public Replica(string sample, string connection, string[] args)
        {
            var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(sample);
            foreach (var arg in args) start.ArgumentList.Add(arg);
            start.Environment["AZURE_STORAGE_CONNECTION_STRING"] = connection;
            _process = Process.Start(start)!;
            _process.OutputDataReceived += (_, e) => Line(e.Data);
            _process.ErrorDataReceived += (_, _) => { };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public bool Active { get; private set; }

        public bool Following { get; private set; }

        public int BatchesSinceTakeover => Volatile.Read(ref _batches);

        public long? FirstBatchAfterTakeover { get; private set; }

        private void Line(string? line)
        {
            if (line is null) return;
            long now = Stopwatch.GetTimestamp();
            if (line.Contains("took over the checkpoint", StringComparison.Ordinal)) Active = true;
            else if (line.StartsWith("standby: following", StringComparison.Ordinal)) Following = true;
            else if (Active && line.StartsWith("batch", StringComparison.Ordinal) && !line.Contains("replayed", StringComparison.Ordinal))
            {
                FirstBatchAfterTakeover ??= now;
                Interlocked.Increment(ref _batches);
            }
        }

        public void Kill()
        {
            try
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }
            catch (InvalidOperationException)
            {
            }
        }
    }
}
