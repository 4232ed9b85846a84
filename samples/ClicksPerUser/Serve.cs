using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using PipelineDsl;
using PipelineDsl.Hosting;
using PipelineDsl.Hosting.Web;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace ClicksPerUser;

/// <summary>
/// The main job as a service: a .NET host running the pipeline (PipelineDsl.Hosting) next to a small web server on
/// 127.0.0.1 with <c>/metrics</c> (Prometheus text, from the PipelineDsl meter through OpenTelemetry),
/// <c>/health/live</c>, <c>/health/ready</c>, and the streaming UI at <c>/</c> with its API (<c>/api/pipelines</c>, <c>/api/progress?pipeline=ID</c>). Every option of the pipeline comes from
/// configuration, section <c>Pipeline</c>: <c>appsettings.json</c> in the working directory, environment variables
/// (<c>Pipeline__BatchInterval=00:00:00.500</c>) or these command-line options. SIGTERM or Ctrl+C finishes the batch,
/// writes a snapshot and exits 0; under systemd it reports its state (<c>Type=notify</c>).
/// </summary>
internal static class Serve
{
    private static readonly ExplicitBucketHistogramConfiguration SecondBuckets = new() { Boundaries = new[] { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 } };

    private static readonly ExplicitBucketHistogramConfiguration ByteBuckets = new() { Boundaries = Enumerable.Range(0, 11).Select(i => 1024.0 * Math.Pow(4, i)).ToArray() };

    public static async Task<int> RunAsync(string? input, string? checkpoint, string? output, string urls, string[] configurationArgs, string? receive = null)
    {
        string work = Path.GetFullPath("clicks-per-user-work");
        string inputDirectory = input ?? Path.Combine(AppContext.BaseDirectory, "data");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = configurationArgs });
        builder.Host.UseSystemd();
        builder.WebHost.UseUrls(urls);

        // Defaults first, so that appsettings.json, environment variables and the command line override them.
        var defaults = new Dictionary<string, string?>
        {
            ["Pipeline:CheckpointDirectory"] = Path.Combine(work, "checkpoint"),
            ["Pipeline:Trigger"] = "Continuous",
            ["Pipeline:MaxRecordsPerPartition"] = "1000",
        };
        // Over HTTP a client's bad line must not stop the service: it goes to the dead letters (inside the checkpoint).
        if (receive is not null) defaults["Pipeline:BadRecordPolicy"] = "DeadLetter";
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource { InitialData = defaults });
        if (checkpoint is not null) builder.Configuration["Pipeline:CheckpointDirectory"] = checkpoint;
        string outputDirectory = output ?? Path.Combine(work, "output");

        // With --receive, clicks arrive over HTTP (POST /ingest) into a write-ahead log; otherwise from the input files.
        // Receiver:MaxBacklogRecords bounds the requests logged but not yet read by a committed batch (503 beyond it);
        // Receiver:SegmentBytes is the size at which the log begins a new segment (segments are deleted whole).
        long maxBacklog = 1_000_000, segmentBytes = 64L << 20;
        if (builder.Configuration["Receiver:MaxBacklogRecords"] is { } bound && (!long.TryParse(bound, out maxBacklog) || maxBacklog < 1))
        {
            Console.Error.WriteLine($"error: Receiver:MaxBacklogRecords is '{bound}': give a number of requests, 1 or more.");
            return 1;
        }

        if (builder.Configuration["Receiver:SegmentBytes"] is { } size && (!long.TryParse(size, out segmentBytes) || segmentBytes < 1024))
        {
            Console.Error.WriteLine($"error: Receiver:SegmentBytes is '{size}': give a number of bytes, 1024 or more.");
            return 1;
        }

        using var receiver = receive is null ? null : new HttpReceiverSource<ClickEvent>(receive, ClickEvent.Parse, new ReceiverOptions { MaxBacklogRecords = maxBacklog, SegmentBytes = segmentBytes });
        builder.Services.AddPipeline(ClicksPerUserPipeline.Definition, builder.Configuration.GetSection("Pipeline"))
            .BindConnectors((_, runner) => runner
                .BindSource(ClicksPerUserPipeline.Clicks(), receiver is not null ? receiver : new FileDirectorySource<ClickEvent>(inputDirectory, ClickEvent.Parse))
                .BindSink(ClicksPerUserPipeline.Totals(), new FileSink<UserTotals>(outputDirectory, t => t.ToCsv())));
        builder.Services.AddHealthChecks().AddPipelineChecks();
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(PipelineMeter.Name)
            // Batch and phase durations are seconds: buckets from 1 ms to a minute (OpenTelemetry's default ones are for milliseconds).
            .AddView("pipelinedsl.batch.*", SecondBuckets)
            .AddView("pipelinedsl.checkpoint.write.duration", SecondBuckets)
            // Checkpoint files and state deltas: bytes, from 1 KiB to 1 GiB by powers of four.
            .AddView("pipelinedsl.checkpoint.write.size", ByteBuckets)
            .AddView("pipelinedsl.state.delta.size", ByteBuckets)
            .AddPrometheusExporter());

        var app = builder.Build();
        app.MapPrometheusScrapingEndpoint(); // /metrics
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = c => c.Tags.Contains(PipelineHealthCheckExtensions.LiveTag), ResponseWriter = WriteHealth });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains(PipelineHealthCheckExtensions.ReadyTag), ResponseWriter = WriteHealth });
        app.MapPipelineDashboard("/"); // the streaming UI at /, its API at /api/pipelines and /api/progress?pipeline=ID
        if (receiver is not null) app.MapPipelineReceiver("/ingest", receiver);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            // The process id and the bound addresses, so that "kill" and "curl" reach this process (with port 0, the port chosen).
            Console.WriteLine($"clicks-per-user serve: process {Environment.ProcessId}, input {(receiver is null ? inputDirectory : "POST /ingest, write-ahead log " + receive)}, output {outputDirectory}");
            foreach (string url in app.Urls) Console.WriteLine($"listening on {url} (the UI at /; /metrics, /health/live, /health/ready, /api/pipelines, /api/progress?pipeline=clicks-per-user)");
        });
        try
        {
            await app.RunAsync();
        }
        catch (Exception e) when (e is Microsoft.Extensions.Options.OptionsValidationException or InvalidOperationException)
        {
            // A configuration the pipeline refuses (the message names the key), or a value of the wrong type for one.
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }

        return Environment.ExitCode;
    }

    /// <summary>The health report as JSON: the overall status and each check's status, description and data.</summary>
    private static Task WriteHealth(HttpContext context, Microsoft.Extensions.Diagnostics.HealthChecks.HealthReport report)
    {
        context.Response.ContentType = "application/json";
        var body = new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description, data = e.Value.Data }),
        };
        return context.Response.WriteAsync(JsonSerializer.Serialize(body));
    }
}
