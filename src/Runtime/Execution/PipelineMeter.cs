namespace PipelineDsl;

/// <summary>The name of the <see cref="System.Diagnostics.Metrics.Meter"/> every pipeline reports to (its instruments are listed in the README, "Metrics").</summary>
public static class PipelineMeter
{
    /// <summary>"PipelineDsl": subscribe to it with OpenTelemetry's <c>AddMeter(PipelineMeter.Name)</c>, <c>dotnet-counters --counters PipelineDsl</c> or a <c>MeterListener</c>.</summary>
    public const string Name = "PipelineDsl";
}
