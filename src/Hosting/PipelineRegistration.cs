using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using PipelineDsl.Graph;

namespace PipelineDsl.Hosting;

/// <summary>What <see cref="PipelineServiceCollectionExtensions.AddPipeline"/> registered for one pipeline.</summary>
internal sealed class PipelineRegistration
{
    public PipelineRegistration(PipelineDefinition definition, IConfiguration configuration, string path)
    {
        Definition = definition;
        Configuration = configuration;
        Path = path;
    }

    public PipelineDefinition Definition { get; }

    public string PipelineId => Definition.PipelineId;

    public IConfiguration Configuration { get; }

    /// <summary>The configuration section's path ("Pipeline", "Pipelines:clicks"), empty for the root: how errors name keys.</summary>
    public string Path { get; }

    public List<Action<IServiceProvider, PipelineRunner>> Binds { get; } = new();

    /// <summary>The full name of configuration key <paramref name="key"/> of this pipeline's section.</summary>
    public string KeyName(string key) => Path.Length == 0 ? key : Path + ":" + key;

    /// <summary>The keys both option types bind (configuration keys compare without regard to case).</summary>
    private static readonly HashSet<string> KnownKeys = new(
        typeof(PipelineRunnerOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Concat(typeof(PipelineServiceOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance))
            .Where(p => p.CanWrite && p.PropertyType != typeof(Checkpointing.ICheckpointStore))
            .Select(p => p.Name),
        StringComparer.OrdinalIgnoreCase);

    /// <summary>Keys of the section that no option binds: a typo would otherwise be silently ignored.</summary>
    public string? UnknownKeys()
    {
        var unknown = Configuration.GetChildren().Select(c => c.Key).Where(k => !KnownKeys.Contains(k)).ToList();
        if (unknown.Count == 0) return null;
        return $"Configuration key{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(k => $"'{KeyName(k)}'"))} of pipeline '{PipelineId}' {(unknown.Count > 1 ? "are" : "is")} not an option. "
               + $"Known options: {string.Join(", ", KnownKeys.OrderBy(k => k, StringComparer.Ordinal))}.";
    }
}

/// <summary>Validates a hosted pipeline's runner options at start, naming configuration keys instead of properties.</summary>
internal sealed class RunnerOptionsValidator : IValidateOptions<PipelineRunnerOptions>
{
    private readonly PipelineRegistration _registration;

    public RunnerOptionsValidator(PipelineRegistration registration) => _registration = registration;

    public ValidateOptionsResult Validate(string? name, PipelineRunnerOptions options)
    {
        if (name != _registration.PipelineId) return ValidateOptionsResult.Skip;
        if (_registration.UnknownKeys() is { } unknown) return ValidateOptionsResult.Fail(unknown);
        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException e)
        {
            // The runner names its property ("PipelineRunnerOptions.CheckpointInterval"); a host's user set a key.
            return ValidateOptionsResult.Fail($"Pipeline '{_registration.PipelineId}': " + e.Message.Replace("PipelineRunnerOptions.", _registration.Path.Length == 0 ? "" : _registration.Path + ":", StringComparison.Ordinal));
        }
    }
}

internal sealed class ServiceOptionsValidator : IValidateOptions<PipelineServiceOptions>
{
    private readonly PipelineRegistration _registration;

    public ServiceOptionsValidator(PipelineRegistration registration) => _registration = registration;

    public ValidateOptionsResult Validate(string? name, PipelineServiceOptions options)
    {
        if (name != _registration.PipelineId) return ValidateOptionsResult.Skip;
        if (options.LivenessTimeout <= TimeSpan.Zero)
            return ValidateOptionsResult.Fail($"Pipeline '{_registration.PipelineId}': {_registration.KeyName(nameof(PipelineServiceOptions.LivenessTimeout))} is {options.LivenessTimeout}: it must be positive.");
        if (options.RecentBatches < 0)
            return ValidateOptionsResult.Fail($"Pipeline '{_registration.PipelineId}': {_registration.KeyName(nameof(PipelineServiceOptions.RecentBatches))} is {options.RecentBatches}: it must be 0 or more.");
        if (options.ReadyMaxLag < 0)
            return ValidateOptionsResult.Fail($"Pipeline '{_registration.PipelineId}': {_registration.KeyName(nameof(PipelineServiceOptions.ReadyMaxLag))} is {options.ReadyMaxLag}: it must be 0 or more (or unset, for no bound).");
        return ValidateOptionsResult.Success;
    }
}
