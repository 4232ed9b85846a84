using System;
using System.Linq;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PipelineDsl.Graph;

namespace PipelineDsl.Hosting;

/// <summary>Registers pipelines as hosted services of a .NET host (<c>Host.CreateApplicationBuilder</c>, <c>WebApplication.CreateBuilder</c>).</summary>
public static class PipelineServiceCollectionExtensions
{
    /// <summary>
    /// Runs <paramref name="definition"/> (a generated <c>Definition</c>) as a hosted service for the life of the host. Its
    /// <see cref="PipelineRunnerOptions"/> and <see cref="PipelineServiceOptions"/> are bound from
    /// <paramref name="configuration"/> (appsettings, environment variables, command line; keys named as the options'
    /// properties) and validated when the host starts: an unknown key, a value of the wrong type or an invalid setting
    /// stops the start with an error naming the key. Bind its sources and sinks with
    /// <see cref="PipelineServiceBuilder.BindConnectors"/>.
    /// </summary>
    /// <returns>The builder for the rest of the pipeline's registration.</returns>
    public static PipelineServiceBuilder AddPipeline(this IServiceCollection services, PipelineDefinition definition, IConfiguration configuration)
    {
        if (services is null) throw new ArgumentNullException(nameof(services));
        if (definition is null) throw new ArgumentNullException(nameof(definition));
        if (configuration is null) throw new ArgumentNullException(nameof(configuration));

        string id = definition.PipelineId;
        if (services.Any(d => d.ServiceType == typeof(PipelineRegistration) && d.ImplementationInstance is PipelineRegistration r && r.PipelineId == id))
            throw new InvalidOperationException($"Pipeline '{id}' is registered twice: one process runs one instance of a pipeline (a second one would wait for the first's checkpoint lock).");

        string path = configuration is IConfigurationSection section ? section.Path : "";
        var registration = new PipelineRegistration(definition, configuration, path);
        services.AddSingleton(registration);
        services.TryAddSingleton(sp => new PipelineRegistry(sp.GetServices<PipelineRegistration>()));
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<PipelineRunnerOptions>(id).Bind(configuration).ValidateOnStart();
        services.AddOptions<PipelineServiceOptions>(id).Bind(configuration).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PipelineRunnerOptions>>(new RunnerOptionsValidator(registration));
        services.AddSingleton<IValidateOptions<PipelineServiceOptions>>(new ServiceOptionsValidator(registration));
        services.AddSingleton<IHostedService>(sp => new PipelineHostedService(
            registration,
            sp,
            sp.GetRequiredService<IOptionsMonitor<PipelineRunnerOptions>>().Get(id),
            sp.GetRequiredService<IOptionsMonitor<PipelineServiceOptions>>().Get(id),
            sp.GetRequiredService<PipelineRegistry>(),
            sp.GetRequiredService<IHostApplicationLifetime>(),
            sp.GetService<ILoggerFactory>()?.CreateLogger("PipelineDsl.Hosting.Pipeline") ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));
        return new PipelineServiceBuilder(services, registration);
    }
}

/// <summary>The rest of a pipeline's registration (see <see cref="PipelineServiceCollectionExtensions.AddPipeline"/>).</summary>
public sealed class PipelineServiceBuilder
{
    private readonly PipelineRegistration _registration;

    internal PipelineServiceBuilder(IServiceCollection services, PipelineRegistration registration)
    {
        Services = services;
        _registration = registration;
    }

    /// <summary>The services the pipeline is registered in.</summary>
    public IServiceCollection Services { get; }

    /// <summary>The pipeline's id.</summary>
    public string PipelineId => _registration.PipelineId;

    /// <summary>
    /// Sets options that configuration cannot express (a <see cref="PipelineRunnerOptions.CheckpointStore"/> built from
    /// services, say), after binding and before validation; may be called more than once.
    /// </summary>
    public PipelineServiceBuilder Configure(Action<IServiceProvider, PipelineRunnerOptions> configure)
    {
        if (configure is null) throw new ArgumentNullException(nameof(configure));
        Services.AddOptions<PipelineRunnerOptions>(PipelineId).Configure<IServiceProvider>((options, services) => configure(services, options));
        return this;
    }

    /// <summary>
    /// Binds every declared source and sink (<see cref="PipelineRunner.BindSource{T}"/>, <see cref="PipelineRunner.BindSink{T}"/>),
    /// with connectors resolved from <see cref="IServiceProvider"/> or built here. Called once, when the pipeline starts.
    /// </summary>
    public PipelineServiceBuilder BindConnectors(Action<IServiceProvider, PipelineRunner> bind)
    {
        if (bind is null) throw new ArgumentNullException(nameof(bind));
        _registration.Binds.Add(bind);
        return this;
    }
}

/// <summary>Options of a hosted pipeline beyond its <see cref="PipelineRunnerOptions"/>, bound from the same configuration section.</summary>
public sealed class PipelineServiceOptions
{
    /// <summary>
    /// When an available-now run (<see cref="TriggerMode.AvailableNow"/>) has processed its input, stop the host (default
    /// true), as a batch job would. A failed run always stops the host, with exit code 1.
    /// </summary>
    public bool StopApplicationWhenDone { get; set; } = true;

    /// <summary>
    /// The liveness check fails when the batch loop has not polled its sources for this long (default 5 minutes). A loop
    /// polls at least once per batch interval, idle or not, so this bounds a stuck loop or an overlong batch; set it
    /// above your longest batch, recovery included.
    /// </summary>
    public TimeSpan LivenessTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// When set, every batch's progress record goes as a JSON line into a rolling log in this directory
    /// (<see cref="BatchProgressLog"/>: 16 MiB files, the newest 10 kept). Default: none.
    /// </summary>
    public string? ProgressLogDirectory { get; set; }

    /// <summary>How many of the latest batches' progress records <see cref="PipelineRegistry.RecentBatches"/> keeps (default 100).</summary>
    public int RecentBatches { get; set; } = 100;

    /// <summary>
    /// When set, the readiness check fails while any source partition's lag after the last batch
    /// (<see cref="PartitionProgress.Lag"/>: records for Kafka and memory sources, bytes for files) is above this bound: the
    /// pipeline runs, but has not caught up. Default: no bound. Liveness is not affected, so a lagging pipeline is not
    /// restarted for it.
    /// </summary>
    public long? ReadyMaxLag { get; set; }
}
