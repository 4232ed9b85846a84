using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using PipelineDsl.Hosting;
using PipelineDsl.Hosting.Web;
using PipelineDsl.Sources;

namespace PipelineDsl.Bench;

/// <summary>
/// The keyed count run as the main job's service runs: under the .NET host, with OpenTelemetry's Prometheus exporter and
/// the streaming UI's API on loopback, while a client scrapes <c>/metrics</c> and polls <c>/api/progress</c> every second
/// (what Prometheus and an open UI page do). Ends when the available-now run has processed its input.
/// </summary>
internal static class HostedRun
{
    public static TimeSpan Run(MemorySource<Click> source, string checkpoint, long perPartitionPerBatch, int parallelism, long expectedRecords)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = Array.Empty<string>() });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:CheckpointDirectory"] = checkpoint,
            ["Pipeline:Trigger"] = "AvailableNow",
            ["Pipeline:MaxRecordsPerPartition"] = perPartitionPerBatch.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Pipeline:CheckpointInterval"] = "10",
            ["Pipeline:Parallelism"] = parallelism.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var sink = new CountingSink<UserCount>();
        builder.Services.AddPipeline(KeyedCount.Definition, builder.Configuration.GetSection("Pipeline"))
            .BindConnectors((_, runner) => runner.BindSource(KeyedCount.In(), source).BindSink(KeyedCount.Out(), sink));
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(PipelineMeter.Name).AddPrometheusExporter());
        var app = builder.Build();
        app.MapPrometheusScrapingEndpoint();
        app.MapPipelineDashboard("/");

        var watch = System.Diagnostics.Stopwatch.StartNew();
        app.StartAsync().GetAwaiter().GetResult();
        string url = app.Urls.First();
        using var http = new HttpClient();
        using var stop = new CancellationTokenSource();
        var client = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await http.GetStringAsync(url + "/metrics", stop.Token);
                    await http.GetStringAsync(url + "/api/progress?pipeline=" + KeyedCount.Definition.PipelineId, stop.Token);
                    await Task.Delay(1000, stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or HttpRequestException)
                {
                }
            }
        });
        app.WaitForShutdownAsync().GetAwaiter().GetResult();
        var elapsed = watch.Elapsed;
        stop.Cancel();
        client.GetAwaiter().GetResult();
        ((IDisposable)app).Dispose();
        if (sink.Count != expectedRecords) throw new InvalidOperationException($"the hosted keyed count emitted {sink.Count} records, not {expectedRecords}");
        return elapsed;
    }
}
