using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text.RegularExpressions;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The main job as a service (<c>serve</c>): a real process, scraped over HTTP. The Prometheus text agrees with the input
/// (counted here from the files, not by the job); health and status answer; every socket is loopback; SIGTERM finishes
/// the batch, writes the final snapshot and exits 0; a configuration error exits 1 naming the key.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class ServeTests : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(2);
    private readonly TempDir _dir = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };

    public void Dispose()
    {
        _http.Dispose();
        _dir.Dispose();
    }

    /// <summary>The value of a Prometheus sample whose name and labels match, or null.</summary>
    private static double? Sample(string metrics, string name, string label)
    {
        foreach (var line in metrics.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) || !line.Contains(label, StringComparison.Ordinal)) continue;
            return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }

        return null;
    }

    [Fact]
    public async Task Serve_exposes_metrics_health_and_status_on_loopback_and_stops_cleanly_on_sigterm()
    {
        string input = _dir.Sub("input");
        SampleProcess.RunToCompletion(new[] { "generate", "--records", "3000", "--files", "2", "--users", "40", "--output", input }, Long);
        var lines = Directory.GetFiles(input).SelectMany(File.ReadLines).ToList();
        var humans = lines.Where(l => l.EndsWith(",0", StringComparison.Ordinal)).ToList();
        int users = humans.Select(l => l.Split(',')[0]).Distinct().Count();

        var (job, url) = await SampleProcess.StartServeAsync(new[]
        {
            "--input", input, "--checkpoint", _dir.Sub("checkpoint"), "--output", _dir.Sub("output"),
            "--Pipeline:BatchInterval=00:00:00.100", "--Pipeline:MaxRecordsPerPartition=500", "--Pipeline:RecentBatches=100000",
        }, Long);
        using var _ = job;

        // Every record read and every human click delivered, as the scraped counters say.
        string metrics = "";
        await Eventually.UntilAsync(() =>
        {
            metrics = _http.GetStringAsync(url + "/metrics").GetAwaiter().GetResult();
            return Sample(metrics, "pipelinedsl_records_output_total", "sink=\"totals\"") == humans.Count;
        }, Long, $"{humans.Count} records delivered according to /metrics");
        Assert.Equal(lines.Count, Sample(metrics, "pipelinedsl_records_input_total", "source=\"clicks\""));
        Assert.Equal(users, Sample(metrics, "pipelinedsl_state_keys", "pipeline=\"clicks-per-user\""));
        Assert.True(Sample(metrics, "pipelinedsl_batches_total", "replayed=\"false\"") >= 3, metrics); // 1,500 lines a file at 500 a batch
        Assert.NotNull(Sample(metrics, "pipelinedsl_batch_phase_duration_seconds_count", "phase=\"commit\""));

        // The names the Prometheus exporter gives the meter's instruments, and every one the shipped alerts and dashboard use.
        var names = ExporterNames();
        foreach (string measured in new[]
                 {
                     "pipelinedsl_batches_total", "pipelinedsl_records_input_total", "pipelinedsl_records_output_total", "pipelinedsl_state_keys",
                     "pipelinedsl_batch_duration_seconds_bucket", "pipelinedsl_batch_phase_duration_seconds_sum", "pipelinedsl_batch_scheduling_delay_seconds_count",
                     "pipelinedsl_source_lag", "pipelinedsl_state_delta_size_bytes_count", "pipelinedsl_checkpoint_write_size_bytes_bucket",
                     "pipelinedsl_checkpoint_write_duration_seconds_sum", "pipelinedsl_records_processing_rate_per_second",
                 })
        {
            Assert.Contains(measured, names);
            Assert.Contains(measured + "{", metrics);
        }

        string root = typeof(ServeTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!;
        foreach (string file in Directory.GetFiles(Path.Combine(root, "docs", "operations")))
        {
            var used = Regex.Matches(File.ReadAllText(file), @"\bpipelinedsl_[a-z_]+").Select(m => m.Value).Distinct().ToList();
            foreach (string name in used) Assert.True(names.Contains(name), $"{Path.GetFileName(file)} names {name}, which the exporter never writes; it writes: {string.Join(", ", names.Order())}");
        }

        var live = await _http.GetAsync(url + "/health/live");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Contains("\"status\":\"Healthy\"", await live.Content.ReadAsStringAsync());
        var ready = await _http.GetAsync(url + "/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains("every pipeline is active", await ready.Content.ReadAsStringAsync());
        string status = await _http.GetStringAsync(url + "/api/pipelines");
        Assert.Contains("\"phase\":\"Running\"", status);
        Assert.Contains("\"id\":\"per-user\"", status); // the operator graph
        using (var progress = System.Text.Json.JsonDocument.Parse(await _http.GetStringAsync(url + "/api/progress?pipeline=clicks-per-user")))
        {
            var batches = progress.RootElement.EnumerateArray().ToList();
            Assert.Equal(lines.Count, batches.Sum(b => b.GetProperty("inputRecords").GetInt64()));
            Assert.All(batches, b => Assert.Equal("clicks-per-user", b.GetProperty("pipeline").GetString()));
        }

        // The checkpoint's files as its store lists them, and the lock's holder: this very process.
        using (var checkpoint = System.Text.Json.JsonDocument.Parse(await _http.GetStringAsync(url + "/api/checkpoint?pipeline=clicks-per-user")))
        {
            var c = checkpoint.RootElement;
            var listed = Directory.GetFiles(Path.Combine(_dir.Sub("checkpoint"), "commits")).Select(f => long.Parse(Path.GetFileName(f), CultureInfo.InvariantCulture)).ToList();
            Assert.InRange(c.GetProperty("newestCommit").GetInt64(), 0, listed.Max()); // the service may commit more meanwhile: never beyond
            Assert.Contains($"process {job.Id} on", c.GetProperty("lockHolder").GetString());
            Assert.Equal(_dir.Sub("checkpoint"), c.GetProperty("location").GetString());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync(url + "/api/checkpoint?pipeline=nope")).StatusCode);
        var sockets = ProcessSockets.Of(job.Id);
        int port = new Uri(url).Port;
        Assert.Contains(sockets, s => s.IsTcp && s.LocalPort == port);
        ProcessSockets.AssertLoopbackOnly(sockets, "the serve process");

        job.SendSigterm();
        Assert.True(job.WaitForExit(Long) == 0, job.Output);
        Assert.Contains("Pipeline clicks-per-user stopped", job.Stdout);
        // The stop left a snapshot of the last committed batch (written then, or by the batch itself): the next start restores it.
        long last = long.Parse(Regex.Match(job.Stdout, @"last committed batch (\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(File.Exists(Path.Combine(_dir.Sub("checkpoint"), "state", last.ToString("D19", CultureInfo.InvariantCulture))), $"no snapshot of batch {last}\n{job.Output}");
        var totals = Directory.GetFiles(_dir.Sub("output")).SelectMany(File.ReadLines).ToList();
        Assert.Equal(humans.Count, totals.Count);
    }

    /// <summary>
    /// Every metric name OpenTelemetry's Prometheus exporter derives from the PipelineDsl meter's instruments: dots become
    /// underscores, a unit of seconds adds <c>_seconds</c>, of milliseconds <c>_milliseconds</c>, of bytes <c>_bytes</c>, per second <c>_per_second</c> (a unit in braces adds nothing), counters end in <c>_total</c>,
    /// histograms come as <c>_bucket</c>, <c>_sum</c> and <c>_count</c>. The serve test checks these rules against a real scrape.
    /// </summary>
    private static HashSet<string> ExporterNames()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name != PipelineMeter.Name) return;
                string name = instrument.Name.Replace('.', '_') + instrument.Unit switch { "s" => "_seconds", "ms" => "_milliseconds", "By" => "_bytes", { } unit when unit.EndsWith("}/s", StringComparison.Ordinal) => "_per_second", _ => "" };
                string kind = instrument.GetType().Name;
                if (kind.StartsWith("Histogram", StringComparison.Ordinal)) names.UnionWith(new[] { name + "_bucket", name + "_sum", name + "_count" });
                else if (kind.StartsWith("Counter", StringComparison.Ordinal)) names.Add(name + "_total");
                else names.Add(name);
            },
        };
        System.Runtime.CompilerServices.RuntimeHelpers.RunClassConstructor(typeof(PipelineDsl.Execution.PipelineMetrics).TypeHandle);
        listener.Start();
        return names;
    }

    [Fact]
    public void A_configuration_error_exits_1_naming_the_key()
    {
        using var job = SampleProcess.Start(new[] { "serve", "--checkpoint", _dir.Sub("checkpoint"), "--urls", "http://127.0.0.1:0", "--Pipeline:CheckpointInterval=0" });
        Assert.Equal(1, job.WaitForExit(Long));
        Assert.Contains("error: Pipeline 'clicks-per-user': Pipeline:CheckpointInterval is 0: it must be 1 or more batches.", job.Stderr);
        Assert.False(Directory.Exists(_dir.Sub("checkpoint")), "a refused configuration created the checkpoint");
    }
}
