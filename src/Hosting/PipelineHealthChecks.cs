using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PipelineDsl.Hosting;

/// <summary>Liveness and readiness of the host's pipelines, as health checks.</summary>
public static class PipelineHealthCheckExtensions
{
    /// <summary>The tag of the liveness check: restart the process when it fails.</summary>
    public const string LiveTag = "live";

    /// <summary>The tag of the readiness check: the pipelines are restored and processing (or following as standbys).</summary>
    public const string ReadyTag = "ready";

    /// <summary>
    /// Adds two checks over every pipeline registered with <see cref="PipelineServiceCollectionExtensions.AddPipeline"/>:
    /// <c>pipelines-live</c> (tag <see cref="LiveTag"/>): unhealthy when a run failed, or when its batch loop has not polled
    /// its sources for <see cref="PipelineServiceOptions.LivenessTimeout"/>; <c>pipelines-ready</c> (tag
    /// <see cref="ReadyTag"/>): healthy when every run is active, degraded when one is a hot standby, unhealthy while one
    /// is starting, recovering, stopped or failed, or while a source partition lags more than
    /// <see cref="PipelineServiceOptions.ReadyMaxLag"/>. Each result's data holds every pipeline's phase and last batch.
    /// </summary>
    public static IHealthChecksBuilder AddPipelineChecks(this IHealthChecksBuilder builder)
    {
        if (builder is null) throw new ArgumentNullException(nameof(builder));
        builder.Add(new HealthCheckRegistration("pipelines-live", sp => new PipelineHealthCheck(sp.GetRequiredService<PipelineRegistry>(), sp.GetRequiredService<TimeProvider>(), live: true), HealthStatus.Unhealthy, new[] { LiveTag }));
        builder.Add(new HealthCheckRegistration("pipelines-ready", sp => new PipelineHealthCheck(sp.GetRequiredService<PipelineRegistry>(), sp.GetRequiredService<TimeProvider>(), live: false), HealthStatus.Unhealthy, new[] { ReadyTag }));
        return builder;
    }
}

internal sealed class PipelineHealthCheck : IHealthCheck
{
    private readonly PipelineRegistry _registry;
    private readonly TimeProvider _time;
    private readonly bool _live;

    public PipelineHealthCheck(PipelineRegistry registry, TimeProvider time, bool live)
    {
        _registry = registry;
        _time = time;
        _live = live;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var worst = HealthStatus.Healthy;
        var reasons = new List<string>();
        foreach (string id in _registry.PipelineIds)
        {
            var status = _registry.StatusOf(id);
            data[id] = status.Phase.ToString() + (status.LastBatch is { } b ? $", last batch {b.BatchId} at {status.LastBatchAt:O}" : "");
            var (health, reason) = _live ? Liveness(id, status) : Readiness(id, status);
            if (health < worst) worst = health;
            if (reason is not null) reasons.Add(reason);
        }

        string description = reasons.Count > 0 ? string.Join("; ", reasons) : _live ? "every pipeline's loop is making progress" : "every pipeline is active";
        return Task.FromResult(new HealthCheckResult(worst, description, data: data));
    }

    private (HealthStatus, string?) Liveness(string id, PipelineRunStatus status)
    {
        if (status.Phase == PipelineRunPhase.Failed) return (HealthStatus.Unhealthy, $"pipeline '{id}' failed: {status.Error}");
        if (status.Phase is PipelineRunPhase.Recovering or PipelineRunPhase.Running or PipelineRunPhase.Standby
            && status.LastPolledAt is { } polled && _registry.OptionsOf(id) is { } options)
        {
            var silent = _time.GetUtcNow() - polled;
            if (silent > options.LivenessTimeout)
                return (HealthStatus.Unhealthy, $"pipeline '{id}' ({status.Phase}) has not polled its sources for {silent.TotalSeconds:F0} s (LivenessTimeout {options.LivenessTimeout.TotalSeconds:F0} s)");
        }

        return (HealthStatus.Healthy, null);
    }

    private (HealthStatus, string?) Readiness(string id, PipelineRunStatus status) => status.Phase switch
    {
        PipelineRunPhase.Running => CaughtUp(id, status),
        PipelineRunPhase.Standby => (HealthStatus.Degraded, $"pipeline '{id}' is a hot standby (another process is active)"),
        PipelineRunPhase.Failed => (HealthStatus.Unhealthy, $"pipeline '{id}' failed: {status.Error}"),
        _ => (HealthStatus.Unhealthy, $"pipeline '{id}' is {status.Phase.ToString().ToLowerInvariant()}"),
    };

    /// <summary>Ready while every partition's lag after the last batch is within <see cref="PipelineServiceOptions.ReadyMaxLag"/>.</summary>
    private (HealthStatus, string?) CaughtUp(string id, PipelineRunStatus status)
    {
        if (_registry.OptionsOf(id)?.ReadyMaxLag is not long bound || status.LastBatch is not { } batch) return (HealthStatus.Healthy, null);
        var behind = batch.Sources
            .SelectMany(s => s.Partitions.Where(p => p.Lag > bound).Select(p => $"{s.Source}/{p.Partition} lags {p.Lag}"))
            .ToList();
        if (behind.Count == 0) return (HealthStatus.Healthy, null);
        return (HealthStatus.Unhealthy, $"pipeline '{id}' is behind its sources after batch {batch.BatchId} (ReadyMaxLag {bound}): {string.Join(", ", behind.Take(5))}{(behind.Count > 5 ? $" and {behind.Count - 5} more" : "")}");
    }
}
